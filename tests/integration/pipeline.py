"""Driving the pipeline's plain functions in rounds, as the Celery tasks would (no Celery)."""

from __future__ import annotations

import time

from batchline.errors import RetryableError
from batchline.pending import count as pending_count
from batchline.workers import aggregator, poller, results, sweeper
from batchline.workers.context import Context


def drain(ctx: Context, timeout: float = 30.0, sleep: float = 0.1) -> None:
    """Run pack / poll / collect / sweep rounds until nothing is pending, open or awaiting delivery."""
    handed: list[str] = []
    deadline = time.monotonic() + timeout
    k = ctx.keys
    while time.monotonic() < deadline:
        aggregator.pack(ctx)
        ctx.redis.delete(k.poll_lock())
        poller.poll(ctx, handed.append)
        retry: list[str] = []
        while handed:
            bid = handed.pop()
            try:
                results.collect(ctx, bid)
            except RetryableError:  # the collect task retries it; here: the next round
                retry.append(bid)
        handed.extend(retry)
        sweeper.sweep(ctx, handed.append)
        busy = pending_count(ctx.redis, k) + ctx.redis.zcard(k.open) + ctx.redis.zcard(k.ended) + ctx.redis.zcard(k.leases)
        if busy == 0:
            return
        time.sleep(sleep)
    raise AssertionError("pipeline did not drain")


def entries(redis_client, stream: str) -> dict[str, dict[str, str]]:
    out = {}
    for _, raw in redis_client.xrange(stream):
        f = {k.decode(): v.decode() for k, v in raw.items()}
        assert f["custom_id"] not in out, f"delivered twice: {f['custom_id']}"
        out[f["custom_id"]] = f
    return out
