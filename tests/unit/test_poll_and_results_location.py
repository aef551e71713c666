"""Pure: the poll round's call budget and rotation, read retries, and where results are fetched from."""

from __future__ import annotations

from datetime import UTC, datetime

import anthropic
import httpx2
import pytest

from batchline.workers.calls import ReadRetry, read
from batchline.workers.poll_plan import OpenBatch, list_more, max_list_pages, rounds_to_see_all, to_retrieve
from batchline.workers.results_location import archived, results_location


def ob(n: int, seen: int = 0) -> OpenBatch:
    return OpenBatch(f"b{n}", f"p{n}", submitted_ms=n, seen_ms=seen)


@pytest.mark.parametrize(
    ("pages", "unseen", "has_more", "oldest", "more"),
    [
        (1, 3, True, 5_000, True),  # the page did not reach back to the oldest open batch
        (1, 3, True, 900, False),  # it did: older pages cannot hold an open batch
        (1, 0, True, 5_000, False),  # everything seen
        (1, 3, False, 5_000, False),  # no more pages
        (5, 3, True, 5_000, False),  # page budget (half of 10) spent
    ],
)
def test_list_more(pages, unseen, has_more, oldest, more):
    assert list_more(pages, 10, unseen, has_more, oldest, oldest_open_ms=2_000, skew_ms=1_000) is more


def test_retrieves_go_to_the_longest_unseen_first():
    batches = [ob(1, seen=300), ob(2, seen=100), ob(3, seen=0), ob(4, seen=200)]
    picked = to_retrieve(batches, seen={"p3"}, calls_left=2)
    assert [b.batch_id for b in picked] == ["b2", "b4"]
    assert to_retrieve(batches, seen=set(), calls_left=0) == []


@pytest.mark.parametrize(("open_count", "budget"), [(1, 2), (37, 10), (500, 20), (3, 3)])
def test_every_open_batch_is_seen_within_the_bound(open_count, budget):
    """Simulate rounds where list pages never show our batches (thousands of newer foreign ones)."""
    batches = {f"p{i}": ob(i) for i in range(open_count)}
    never_seen = set(batches)
    bound = rounds_to_see_all(open_count, budget)
    for rnd in range(1, bound + 1):
        calls_left = budget - max_list_pages(budget)  # every list page spent, none of them showing ours
        for b in to_retrieve(list(batches.values()), seen=set(), calls_left=calls_left):
            batches[b.provider_id] = OpenBatch(b.batch_id, b.provider_id, b.submitted_ms, seen_ms=rnd)
            never_seen.discard(b.provider_id)
    assert not never_seen


def _status_error(status: int, headers: dict[str, str] | None = None) -> anthropic.APIStatusError:
    request = httpx2.Request("GET", "http://x/v1/messages/batches")
    response = httpx2.Response(
        status, headers=headers or {}, request=request, json={"type": "error", "error": {"type": "x", "message": "m"}}
    )
    cls = {
        429: anthropic.RateLimitError,
        529: anthropic.OverloadedError,
        404: anthropic.NotFoundError,
        500: anthropic.InternalServerError,
    }[status]
    return cls("m", response=response, body=response.json())


def test_read_retries_with_retry_after_then_succeeds():
    faults = [_status_error(429, {"retry-after": "2"}), _status_error(529)]
    calls, sleeps = [], []

    def call() -> str:
        if faults:
            raise faults.pop(0)
        return "page"

    assert read(call, ReadRetry(tries=3), lambda: calls.append(1), "list", sleeps.append) == "page"
    assert len(calls) == 3 and sleeps == [2.0, 1.0]


@pytest.mark.parametrize(
    ("error", "tries", "calls"),
    [
        (_status_error(404), 3, 1),  # not retryable
        (_status_error(500), 2, 2),  # tries spent
        (_status_error(429, {"retry-after": "60"}), 3, 1),
    ],  # longer than the cap: give the round up
)
def test_read_gives_up(error, tries, calls):
    made = []

    def call() -> str:
        raise error

    with pytest.raises(type(error)):
        read(call, ReadRetry(tries=tries, cap_seconds=5), lambda: made.append(1), "list", lambda s: None)
    assert len(made) == calls


API = "http://gw.example/anthropic"


@pytest.mark.parametrize(
    ("base", "url", "from_base", "expected"),
    [
        (
            API,
            "https://api.example/v1/messages/batches/b1/results",
            False,
            "https://api.example/v1/messages/batches/b1/results",
        ),  # absolute: as given
        (
            API,
            "/anthropic/v1/messages/batches/b1/results",
            False,
            "http://gw.example/anthropic/v1/messages/batches/b1/results",
        ),
        (API, "/v1/messages/batches/b1/results", False, "http://gw.example/v1/messages/batches/b1/results"),  # RFC 3986
        (
            API + "/",
            "v1/messages/batches/b1/results",
            False,
            "http://gw.example/anthropic/v1/messages/batches/b1/results",
        ),
        (API, "//cdn.example/r/b1", False, "http://cdn.example/r/b1"),  # network-path reference
        (API, "https://unreachable.invalid/x", True, "http://gw.example/anthropic/v1/messages/batches/b1/results"),
        (None, None, False, "https://api.anthropic.com/v1/messages/batches/b1/results"),
    ],
)
def test_results_location(base, url, from_base, expected):
    assert results_location(base, "b1", url, from_base) == expected


def test_archived():
    at = datetime(2026, 1, 30, tzinfo=UTC)
    assert archived(at, at.timestamp()) and archived(at, at.timestamp() + 1)
    assert not archived(at, at.timestamp() - 1) and not archived(None, 1e12)
