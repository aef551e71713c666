"""A 429 saying the processing queue is full lowers the effective in-flight limit until batches end,
instead of retrying creates into the full queue after `retry-after`."""

from __future__ import annotations

from batchline.clock import FakeClock
from batchline.producers.producer import Producer
from batchline.workers import aggregator
from batchline.workers.context import Context
from tests.integration.pipeline import drain


def test_queue_full_429_lowers_the_in_flight_limit_until_batches_end(pipeline_settings, emulator, redis_client):
    emulator.set_faults(queue_limit=60, processing_seconds=3.0, retry_after_seconds=1)
    s = pipeline_settings.replace(s3_bucket=None, max_batch_requests=30, max_requests_in_flight=10_000)
    producer = Producer.from_settings(s)
    report = producer.submit_many({"custom_id": f"ql-{i}", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": f"q{i}"}]}}
        for i in range(150))
    assert report.accepted == 150
    clock = FakeClock()
    ctx = Context(s, clock=clock)
    assert [c.outcome for c in aggregator.pack(ctx)] == ["submitted", "submitted", "released"]
    assert redis_client.get(ctx.keys.in_flight_cap) == b"60"  # what was in flight when the queue was full
    assert not redis_client.exists(ctx.keys.create_backoff)
    assert aggregator.limits(ctx, 60).max_in_flight == 60
    # past retry-after on both clocks, before the batches end (3 s): no create goes into the full queue
    clock.advance(1.5)
    emulator.advance(1.5)
    assert aggregator.pack(ctx) == []
    books = emulator.books()
    assert books["operations"]["create"] == 3 and books["http_faults"]["queue_limit"] == 1

    ctx = Context(s)  # the rest on Redis time: the batches end and make room
    drain(ctx, timeout=60)
    books = emulator.books()
    assert books["billed_requests"] == 150 and books["requests_in_multiple_batches"] == 0
    # one refused create per time the queue filled up (150 requests, 60 at a time), not one per retry-after
    assert books["http_faults"]["queue_limit"] <= 3
    assert aggregator.pack(ctx) == []  # the next pack tick with nothing in flight lifts the lowered limit
    assert not redis_client.exists(ctx.keys.in_flight_cap)
