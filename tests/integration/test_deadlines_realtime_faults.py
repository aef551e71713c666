"""Real-time calls under the API's limits, against the emulator over HTTP: a 429 is tried again after
its retry-after, the per-model concurrency cap holds calls back, and any failure (or too many tries, or a
lost call) falls back to the batch: the request is delivered by its batch, exactly once, never lost."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from batchline.clock import FakeClock
from batchline.fields import R
from batchline.keys import REALTIME_BATCH, request_id
from batchline.producers.producer import Producer
from batchline.workers import deadlines, realtime
from batchline.workers.context import Context
from tests.integration.pipeline import drain, entries


def params(text: str) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def dl_settings(pipeline_settings):
    return pipeline_settings.replace(min_deadline_seconds=0.0, batch_turnaround_seconds=3600.0)


def faults(emulator, **changes) -> None:
    assert httpx.post(f"{emulator.base_url}/_emulator/faults", json=changes).status_code == 200


def taken(settings, cid: str, ctx: Context) -> str:
    producer = Producer.from_settings(settings)
    producer.submit(cid, params(cid), deadline_seconds=600, reply_to="redis-stream:out")
    producer.close()
    routed = deadlines.route_new(ctx)
    assert routed.calls == [request_id("default", cid)]
    return routed.calls[0]


def state(ctx: Context, rid: str) -> tuple[str, str, str]:
    s, b, p = ctx.redis.hmget(ctx.keys.request(rid), R.STATE, R.BATCH, R.PATH)
    return s.decode(), b.decode(), p.decode()


def test_429_is_retried_after_its_retry_after_then_answered(dl_settings, redis_client, emulator):
    ctx = Context(dl_settings)
    rid = taken(dl_settings, "limited", ctx)
    faults(emulator, http_429_rate=1.0, fault_operations=["messages"], retry_after_seconds=7)
    before = ctx.redis.zscore(ctx.keys.realtime, rid)
    done = realtime.answer(ctx, rid)
    assert (done.status, done.retry_after) == ("retry", 7.0)
    assert ctx.redis.zscore(ctx.keys.realtime, rid) >= before + 6000  # its lease covers the wait
    assert state(ctx, rid) == ("batched", REALTIME_BATCH, "realtime")  # still waiting for its call
    faults(emulator, http_429_rate=0.0)
    assert realtime.answer(ctx, rid, tries=1).status == "delivered"
    assert list(entries(redis_client, "out")) == ["limited"]


def test_too_many_429s_fall_back_to_the_batch(dl_settings, redis_client, emulator):
    ctx = Context(dl_settings)
    rid = taken(dl_settings, "throttled", ctx)
    faults(emulator, http_429_rate=1.0, fault_operations=["messages"], retry_after_seconds=1)
    assert realtime.answer(ctx, rid, tries=realtime.MAX_TRIES - 1).status == "fell_back"
    assert state(ctx, rid) == ("queued", "", "batch")
    assert "429" in Producer.from_settings(dl_settings).status("throttled")["path_reason"]
    drain(ctx)
    out = entries(redis_client, "out")
    assert list(out) == ["throttled"] and out["throttled"]["batch_id"] != REALTIME_BATCH


def test_a_server_error_falls_back_at_once_and_the_batch_delivers(dl_settings, redis_client, emulator):
    ctx = Context(dl_settings)
    rid = taken(dl_settings, "broken", ctx)
    faults(emulator, http_500_rate=1.0, fault_operations=["messages"])
    assert realtime.answer(ctx, rid).status == "fell_back"
    assert not ctx.redis.zscore(ctx.keys.realtime, rid)
    faults(emulator, http_500_rate=0.0)
    drain(ctx)
    assert list(entries(redis_client, "out")) == ["broken"]
    status = Producer.from_settings(dl_settings).status("broken")
    assert status["state"] == "delivered" and "real-time call failed (500" in status["path_reason"]


def test_concurrency_cap_per_model_holds_a_call_back(dl_settings, redis_client, emulator):
    settings = dl_settings.replace(realtime_max_concurrency=1)
    ctx = Context(settings)
    rid = taken(settings, "capped", ctx)
    now = ctx.clock.now_ms()
    slots = ctx.keys.realtime_slots("claude-haiku-4-5")
    assert ctx.scripts.slot(slots, now, now + 60_000, 1, "another-call")  # the model's one slot is taken
    done = realtime.answer(ctx, rid)
    assert (done.status, done.retry_after) == ("retry", realtime.SLOT_WAIT_SECONDS)
    redis_client.zrem(slots, "another-call")
    assert realtime.answer(ctx, rid, tries=1).status == "delivered"
    assert redis_client.zcard(slots) == 0  # its own slot was given back


def test_a_lost_call_falls_back_when_its_lease_runs_out(dl_settings, redis_client, emulator):
    clock = FakeClock()
    ctx = Context(dl_settings, clock=clock)
    rid = taken(dl_settings, "lost", ctx)  # no task ever calls it (a worker died)
    assert deadlines.recover_lost(ctx).recovered == 0
    clock.advance(deadlines.CALL_LEASE_SECONDS + 1)
    assert deadlines.recover_lost(ctx).recovered == 1
    assert state(ctx, rid) == ("queued", "", "batch")
    drain(Context(dl_settings))
    assert list(entries(redis_client, "out")) == ["lost"]


def test_a_hedge_that_fails_leaves_the_request_to_its_batch(dl_settings, redis_client, emulator):
    settings = dl_settings.replace(batch_turnaround_seconds=1.0, deadline_margin_seconds=3600.0)
    ctx = Context(settings)
    producer = Producer.from_settings(settings)
    producer.submit("h", params("h"), deadline_seconds=600, reply_to="redis-stream:out")
    assert deadlines.route_new(ctx).batch == 1
    from batchline.workers import aggregator

    aggregator.pack(ctx)
    rid = deadlines.hedge(ctx).calls[0]
    faults(emulator, http_500_rate=1.0, fault_operations=["messages"])
    assert realtime.answer(ctx, rid).status == "fell_back"
    assert state(ctx, rid)[0] in ("batched", "submitted") and state(ctx, rid)[2] == "hedged"
    faults(emulator, http_500_rate=0.0)
    drain(ctx)
    assert list(entries(redis_client, "out")) == ["h"]
    producer.close()
