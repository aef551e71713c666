"""Every key batchline writes has a TTL or a bound: ten rounds of 1,000 requests through the pipeline,
then, once the records' TTL has passed (Redis's clock, a 2 s TTL) and batchline's own clock is moved
past it (the emulated clock passed to the sweep's retention step), key count and used_memory are
back at the baseline. A Redis of its own, the emulator over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from batchline import turnaround
from batchline.clock import now_ms
from batchline.config.settings import Settings
from batchline.local_services import RedisServer
from batchline.producers.producer import Producer
from batchline.reports import cost_rows
from batchline.workers import retention, sweeper
from batchline.workers.context import Context
from tests.integration.pipeline import drain

TTL = 2
PARAMS = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hello " * 20}]}


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(appendonly=False).start()
    yield server
    server.stop()


def prefix_keys(client: redis.Redis, prefix: str) -> list[bytes]:
    """The keys without a TTL (locks and leases carry one and come and go)."""
    keys = sorted(client.scan_iter(match=f"{prefix}:*", count=1000))  # SCAN also reclaims expired keys
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.ttl(key)
    return [key for key, ttl in zip(keys, pipe.execute(), strict=True) if ttl == -1]


def round_trip(ctx: Context, producer: Producer, n: int, tag: str) -> None:
    assert producer.submit_many([{"custom_id": f"{tag}-{i}", "params": PARAMS} for i in range(n)]).accepted == n
    drain(ctx, timeout=60)


def settle(ctx: Context, days_ahead: int) -> None:
    """Run the sweep's retention step on an emulated clock past the TTL and the cost-day window (as a
    sweep every 15 s would have, while the batch records still live), then let Redis expire the
    records on its own clock."""
    retention.trim(ctx, now_ms() + days_ahead * 86_400_000)
    sweeper.watchdogs(ctx, now_ms())
    time.sleep(TTL + 1)


def test_ten_rounds_return_to_baseline(own_redis, emulator):
    s = Settings(redis_url=own_redis.url, key_prefix="bk", anthropic_api_key="test-key",
                 anthropic_base_url=emulator.base_url, max_wait_seconds=0.0, fresh_batch_grace_seconds=30.0,
                 clock_skew_seconds=1.0, record_ttl_seconds=TTL, cost_days_kept=1)
    ctx, producer = Context(s), Producer.from_settings(s)
    client = ctx.redis
    round_trip(ctx, producer, 200, "warm")  # counters, stats and a cost month exist from here on
    settle(ctx, days_ahead=3)
    baseline_keys = prefix_keys(client, "bk")
    history = ctx.keys.turnaround("claude-haiku-4-5")  # deadlines' turnaround history: bounded and expiring
    assert client.llen(history) >= 1 and 0 < client.ttl(history) <= turnaround.TTL_SECONDS
    # one bounded set: totals per tenant, pipeline stats, the cost months
    assert set(baseline_keys) == {b"bk:counters", b"bk:stats", b"bk:cost:months", b"bk:cost:" + time.strftime(
        "%Y-%m", time.gmtime()).encode()}
    baseline_mem = client.info("memory")["used_memory"]
    spent = sum(r.batch_usd for r in cost_rows(client, ctx.keys))
    for n in range(10):
        round_trip(ctx, producer, 1000, f"r{n}")
    grown = set(prefix_keys(client, "bk")) - set(baseline_keys)  # delivered records carry their TTL
    k = ctx.keys
    day = time.strftime("%Y-%m-%d", time.gmtime())
    assert grown == {k.batches.encode(), k.provider_index.encode(), k.cost_days.encode(), k.cost_day(day).encode()}
    assert client.dbsize() > 1000  # and the last rounds' records are still there
    assert client.info("memory")["used_memory"] > baseline_mem + 256 * 1024
    settle(ctx, days_ahead=3)
    assert prefix_keys(client, "bk") == baseline_keys, "a key without a TTL or a bound"
    assert client.llen(history) <= turnaround.SAMPLES
    assert client.zcard(ctx.keys.batches) == 0 and client.hlen(ctx.keys.provider_index) == 0
    assert client.scard(ctx.keys.cost_days) == 0 and client.scard(ctx.keys.cost_months) == 1
    used = client.info("memory")["used_memory"]
    assert used <= baseline_mem + 256 * 1024, (used, baseline_mem)
    # the costs survived the roll-up into the month
    assert sum(r.batch_usd for r in cost_rows(client, ctx.keys)) > spent > 0
