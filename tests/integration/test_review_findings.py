"""Review 13: defects found in fair share / quotas, each proven by a test against real Redis."""

from __future__ import annotations

import time
from collections import Counter

from batchline.fields import R
from batchline.keys import request_id
from batchline.producers.producer import Producer
from batchline.workers import aggregator
from batchline.workers.context import Context
from batchline.workers.packing import Take


def params(i: int, pad: str = "") -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": f"q{i}{pad}"}]}


def tenants_of(ctx: Context, flat: list[bytes]) -> Counter[str]:
    pipe = ctx.redis.pipeline(transaction=False)
    for rid in flat[0::2]:
        pipe.hget(ctx.keys.request(rid.decode()), R.TENANT)
    return Counter(t.decode() for t in pipe.execute())


def test_one_claim_does_bounded_work_over_requests_canceled_while_queued(settings, redis_client):
    """0.1's claim looked at most max_requests list entries per call (LRANGE 0..max_n-1). The fair
    share claim walks a tenant's list window after window while every entry in it is canceled (no
    LREM at cancel: 'claim drops them as it passes'), so one claim can walk a list of any length in
    one Lua call: Redis is blocked for all of it. A tenant gets such a list by submit + cancel, over
    and over (a cancel frees its quota)."""
    producer = Producer.from_settings(settings)
    n = 60_000
    producer.submit_many(({"custom_id": f"c-{i}", "params": params(i)} for i in range(n)), tenant="churn")
    rids = [request_id("churn", f"c-{i}") for i in range(n)]
    for j in range(0, n, 5000):
        producer.cancel_ids(rids[j:j + 5000])
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    key = ctx.keys.pending_of("churn")
    assert redis_client.llen(key) == n
    t0 = time.perf_counter()
    _, _, flat = aggregator.claim(ctx, Take(10, 10**9, "full"))
    elapsed = time.perf_counter() - t0
    assert flat == []
    examined = n - redis_client.llen(key)
    # bounded by the batch's size (a small multiple of it, or a fixed cap), not by the list's length
    assert examined <= 20_000, f"one claim of max 10 requests examined {examined} entries in {elapsed:.2f}s"
