"""Pure logic: the packing rule, the retry policy, the JSONL splitter, settings (costs: test_costs.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchline.config.settings import Settings
from batchline.errors import ConfigError, InvalidRequest
from batchline.retry import DELIVER, RETRY, Decision, RetryPolicy, final_outcome
from batchline.states import REQUEST_TRANSITIONS, RequestState, can_move, sources
from batchline.workers.lines import iter_lines
from batchline.workers.packing import Limits, QueueView, next_batch

LIMITS = Limits(max_requests=100, max_bytes=10_000, max_wait_ms=5_000, max_in_flight=1_000)


def view(pending=0, pbytes=0, age=0, in_flight=0) -> QueueView:
    return QueueView(pending, pbytes, age, in_flight)


def test_packing_waits_until_full_or_aged():
    assert next_batch(view(50, 500, 1_000), LIMITS) is None
    full = next_batch(view(150, 1_500, 0), LIMITS)
    assert full is not None and full.reason == "full" and full.max_requests == 100
    aged = next_batch(view(3, 30, 5_000), LIMITS)
    assert aged is not None and aged.reason == "aged"
    by_bytes = next_batch(view(20, 20_000, 0), LIMITS)
    assert by_bytes is not None and by_bytes.max_bytes == 10_000


def test_packing_respects_the_in_flight_budget():
    assert next_batch(view(500, 5_000, 0, in_flight=1_000), LIMITS) is None
    # a full batch waits for a whole budget rather than going out small ...
    assert next_batch(view(500, 5_000, 0, in_flight=950), LIMITS) is None
    # ... but an aged one takes what the budget allows
    aged = next_batch(view(500, 5_000, 9_000, in_flight=950), LIMITS)
    assert aged is not None and aged.max_requests == 50


def test_retry_policy_by_error_class_and_budget():
    p = RetryPolicy(max_attempts=3)
    assert p.decide("succeeded", "", 0, False) == Decision(DELIVER, "succeeded", "succeeded")
    assert p.decide("errored", "invalid_request_error", 0, False) == Decision(DELIVER, "invalid_request_error",
                                                                              "errored")
    for transient in ("overloaded_error", "api_error", "timeout_error", "rate_limit_error"):
        assert p.decide("errored", transient, 0, False) == Decision(RETRY, transient, "errored")
        assert p.decide("errored", transient, 2, False).action == DELIVER  # third attempt was the last
    assert p.decide("expired", "", 1, False) == Decision(RETRY, "expired", "expired")
    assert p.decide("canceled", "", 0, False).action == RETRY  # canceled by the provider, not the caller
    assert p.decide("canceled", "", 0, True) == Decision(DELIVER, "canceled", "canceled")
    assert p.decide("succeeded", "", 0, True).outcome == "canceled"  # its caller canceled it meanwhile
    assert final_outcome("succeeded", True) == "canceled"
    # the policy holds the transient set and the budget; final_only re-drives nothing
    assert RetryPolicy(transient=frozenset({"api_error"})).decide("errored", "overloaded_error", 0, False).action == DELIVER
    assert RetryPolicy.final_only().decide("errored", "overloaded_error", 0, False).action == DELIVER
    assert RetryPolicy.final_only().decide("expired", "", 0, False).action == DELIVER


def test_state_transitions_in_one_place():
    assert can_move(REQUEST_TRANSITIONS, "queued", "batched")
    assert not can_move(REQUEST_TRANSITIONS, "delivered", "queued")
    assert not can_move(REQUEST_TRANSITIONS, "queued", "nonsense")
    assert sources(REQUEST_TRANSITIONS, RequestState.DELIVERED) == [
        "batched", "delivering", "ended", "submitted", "undeliverable"]
    assert sources(REQUEST_TRANSITIONS, RequestState.UNDELIVERABLE) == ["batched", "delivering", "ended", "submitted"]
    assert sources(REQUEST_TRANSITIONS, RequestState.DELIVERING) == ["batched", "ended", "submitted", "undeliverable"]


def test_lines_split_on_newline_only_and_strip_cr_across_chunk_boundaries():
    payload = ('{"a":"x\u2028y"}\r\n{"b":2}\r\n\r\n{"c":3}').encode()
    for size in range(1, len(payload) + 1):  # every boundary, including inside \r\n
        chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
        lines = [json.loads(line) for line in iter_lines(chunks)]
        assert lines == [{"a": "x\u2028y"}, {"b": 2}, {"c": 3}]


@given(st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3), max_size=20),
       st.integers(1, 50), st.booleans())
def test_lines_roundtrip_any_chunking(objects, size, crlf):
    newline = b"\r\n" if crlf else b"\n"
    payload = b"".join(json.dumps(o, ensure_ascii=False).encode() + newline for o in objects)
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
    assert [json.loads(line) for line in iter_lines(chunks)] == objects


def test_settings_from_env_name_the_variable_and_rule():
    s = Settings.from_env({"BATCHLINE_MAX_BATCH_REQUESTS": "500", "ANTHROPIC_API_KEY": "sk-secret"})
    assert s.max_batch_requests == 500 and "sk-secret" not in repr(s)
    with pytest.raises(ConfigError, match="BATCHLINE_MAX_BATCH_REQUESTS=100001"):
        Settings.from_env({"BATCHLINE_MAX_BATCH_REQUESTS": "100001"})
    with pytest.raises(ConfigError, match="BATCHLINE_POLL_INTERVAL_SECONDS='soon'"):
        Settings.from_env({"BATCHLINE_POLL_INTERVAL_SECONDS": "soon"})
    with pytest.raises(ConfigError, match="max_batch_bytes"):
        Settings(max_batch_bytes=300_000_000)


SWEEP_TABLE = [  # (batch state, lease state) -> what the sweeper does
    ("claimed", "held", "wait"), ("claimed", "expired", "release"), ("claimed", "none", "release"),
    ("creating", "held", "wait"), ("creating", "expired", "reconcile"), ("creating", "none", "reconcile"),
    ("ended", "held", "wait"), ("ended", "expired", "hand_off"), ("ended", "none", "hand_off"),
    ("submitted", "held", "forget"), ("submitted", "expired", "forget"), ("delivered", "none", "forget"),
    ("released", "expired", "forget"), ("", "none", "forget"),
]


@pytest.mark.parametrize(("state", "lease", "expected"), SWEEP_TABLE)
def test_sweeper_action_by_batch_and_lease_state(state, lease, expected):
    from batchline.leases import LeaseState
    from batchline.workers.sweeper import action

    assert action(state, LeaseState(lease)) == expected


def test_lease_state_from_owner_and_expiry():
    from batchline.leases import LeaseState, lease_state

    assert lease_state(None, None, 100) is LeaseState.NONE
    assert lease_state("a", "101", 100) is LeaseState.HELD
    assert lease_state("a", "100", 100) is LeaseState.EXPIRED



@pytest.mark.parametrize(
    "bad, where",
    [
        ({"score": float("nan")}, "params.metadata.score"),  # small: scanned for null, then walked
        ({"doc": "x" * 100_000, "score": float("inf")}, "params.metadata.score"),  # a document: walked
        ({"doc": "x" * 100_000, "v": [1.0] * 2000 + [float("-inf")]}, "params.metadata.v[2000]"),  # many: scanned
    ],
)
def test_nan_and_infinity_are_refused_by_path_whatever_the_size(bad, where):
    from batchline.errors import InvalidRequest
    from batchline.requests import encode

    params = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}], "metadata": bad}
    with pytest.raises(InvalidRequest, match="NaN and Infinity") as exc:
        encode("c", params, tenant="t", max_bytes=10**9)
    assert exc.value.field == where
    finite = {k: [1.0] * len(v) if isinstance(v, list) else 2.5 if isinstance(v, float) else v for k, v in bad.items()}
    assert encode("c", {**params, "metadata": finite}, tenant="t", max_bytes=10**9).params_json.startswith(b"{")


@pytest.mark.parametrize(("name", "ok"), [("{bl}.results", True), ("app:{bl}:out", True), ("results", False),
                                          ("{other}.results", False), ("{}{bl}", False), ("{bl}:r:x", False)])
def test_with_a_tagged_prefix_reply_streams_carry_its_tag(name, ok):
    """Cluster mode: a reply stream is written by the scripts, so it must be in their slot ({bl}:... is ours)."""
    from batchline.requests import ReplyTarget

    if ok:
        assert ReplyTarget.parse(f"redis-stream:{name}", "{bl}").key == name
    else:
        with pytest.raises(InvalidRequest):
            ReplyTarget.parse(f"redis-stream:{name}", "{bl}")
    assert ReplyTarget.parse("celery:app.done@results", "{bl}").key == "results"  # under the broker prefix
