"""Where results come from, through the plain functions against the emulator over HTTP: a relative
results_url behind a base URL with a path, a gateway whose results URL names an unreachable host,
a results 404 that never heals, and a batch past its archive date."""

from __future__ import annotations

import pytest

from batchline.producers.producer import Producer
from batchline.workers import sweeper
from batchline.workers.context import Context
from tests.integration.pipeline import drain, entries

N = 6


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": f"loc {i}"}]}


@pytest.fixture
def base(pipeline_settings):
    return pipeline_settings.replace(s3_bucket=None)


def submit(settings, stream: str) -> Producer:
    producer = Producer.from_settings(settings)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(N)), reply_to=f"redis-stream:{stream}")
    return producer


@pytest.mark.parametrize(
    ("mode", "from_base"), [("relative", False), ("unreachable", True)],
    ids=["relative reference, resolved per RFC 3986", "gateway: the documented path on the base URL"],
)
def test_results_behind_a_base_url_with_a_path(base, redis_client, emulator, mode, from_base):
    emulator.set_faults(mount_path="/anthropic", results_url_mode=mode)
    s = base.replace(anthropic_base_url=emulator.base_url + "/anthropic", results_from_base_url=from_base)
    submit(s, "loc")
    drain(Context(s))
    got = entries(redis_client, "loc")
    assert len(got) == N and {v["outcome"] for v in got.values()} == {"succeeded"}
    assert emulator.books()["results_downloads"] >= 1


def test_results_404_gives_each_request_one_final_outcome_and_an_alert(base, redis_client, emulator):
    s = base.replace(results_404_retries=2)
    producer = submit(s, "gone404")
    emulator.set_faults(results_404=True)
    ctx = Context(s)
    drain(ctx)
    got = entries(redis_client, "gone404")
    assert len(got) == N and {v["outcome"] for v in got.values()} == {"errored"}
    status = producer.status("r-0")
    assert status["error_type"] == "results_unavailable" and status["attempts"] == 1
    assert emulator.books()["http_faults"]["results_404"] == 3  # the first try and 2 retries, then no more
    alerts = sweeper.watchdogs(ctx, 0)
    assert [a for a in alerts if a.startswith("results_unavailable:")]
    assert emulator.books()["requests_in_multiple_batches"] == 0  # not sent again: final


def test_past_archived_at_no_download_is_tried(base, redis_client, emulator):
    emulator.set_faults(processing_seconds=60.0)
    submit(base, "arch")
    ctx = Context(base)
    drain_until_open(ctx)
    emulator.advance(30 * 86400)  # ended long ago, and archived
    drain(ctx)
    got = entries(redis_client, "arch")
    assert len(got) == N and {v["outcome"] for v in got.values()} == {"errored"}
    assert emulator.books()["results_downloads"] == 0


def drain_until_open(ctx: Context) -> None:
    from batchline.workers import aggregator

    for _ in range(20):
        aggregator.pack(ctx)
        if ctx.redis.zcard(ctx.keys.open):
            return
    raise AssertionError("no batch was submitted")
