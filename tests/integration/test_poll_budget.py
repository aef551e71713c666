"""The poll round against the emulator over HTTP: a bounded call budget that rotates, so every open
batch is seen however many foreign batches are newer; a fault mid-round keeps what the round saw."""

from __future__ import annotations

import time

import httpx2

from batchline.producers.producer import Producer
from batchline.workers import aggregator, poller
from batchline.workers.context import Context
from batchline.workers.poll_plan import rounds_to_see_all


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": f"poll {i}"}]}


def open_batches(settings, n_batches: int, per_batch: int = 2) -> Context:
    producer = Producer.from_settings(settings)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(n_batches * per_batch)),
                         reply_to="redis-stream:poll")
    ctx = Context(settings)
    aggregator.pack(ctx)
    assert ctx.redis.zcard(ctx.keys.open) == n_batches
    time.sleep(0.5)  # they end (processing 0.3 s)
    return ctx


def one_round(ctx: Context, ended: list[str]) -> poller.PollReport:
    ctx.redis.delete(ctx.keys.poll_lock(), ctx.keys.poll_backoff)
    return poller.poll(ctx, ended.append)


def test_every_open_batch_is_seen_within_the_bound_behind_foreign_batches(pipeline_settings, emulator):
    s = pipeline_settings.replace(s3_bucket=None, max_batch_requests=2, poll_call_budget=4)
    ctx = open_batches(s, 5)
    with httpx2.Client(base_url=emulator.base_url) as h:
        h.post("/_emulator/foreign", json={"batches": 120, "requests": 2})  # newer than ours, our size
    emulator.set_faults(list_page_max=5)
    ended: list[str] = []
    bound = rounds_to_see_all(5, 4)
    reports = [one_round(ctx, ended) for _ in range(bound)]
    assert all(r.api_calls <= 4 for r in reports), [r.api_calls for r in reports]
    assert sorted(ended) == sorted(b.decode() for b in ctx.redis.zrange(ctx.keys.ended, 0, -1))
    assert len(ended) == 5 and len(set(ended)) == 5
    assert int(ctx.redis.hget(ctx.keys.counters, "poll_rounds")) == bound
    listed = int(ctx.redis.hget(ctx.keys.counters, "api_calls:poll:list"))
    retrieved = int(ctx.redis.hget(ctx.keys.counters, "api_calls:poll:retrieve"))
    assert listed + retrieved == sum(r.api_calls for r in reports) and retrieved >= 5


def test_a_fault_mid_round_keeps_what_the_round_saw(pipeline_settings, emulator):
    s = pipeline_settings.replace(s3_bucket=None, max_batch_requests=2, poll_call_budget=2)
    ctx = open_batches(s, 2)
    emulator.set_faults(list_page_max=1, http_429_rate=1.0, fault_operations=("retrieve",), retry_after_seconds=1)
    ended: list[str] = []
    first = one_round(ctx, ended)
    assert first.failed == "api error 429" and first.retrieve_calls == 3  # retried, honouring retry-after
    assert len(ended) == 1  # the batch the list page showed is handed off all the same
    emulator.set_faults(http_429_rate=0.0)
    second = one_round(ctx, ended)
    assert second.failed is None and len(ended) == 2 and len(set(ended)) == 2
