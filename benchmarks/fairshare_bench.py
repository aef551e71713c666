"""Fair-share benchmarks (row 7 of benchmarks/run.py).

(a) The small tenant's wait: tenant A holds a backlog, one batch of it is out, then tenant B submits
50 requests; packing goes on (real creates at the emulator) until every one of B's is in a batch.
The baseline, in the same run, is one FIFO for everyone (0.1's behaviour): B's 50 submitted behind
A's backlog in A's own list. (b) The claim's cost: one batch claimed from 100 tenants against the
same batch claimed from one tenant.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import redis

from batchline.fields import R
from batchline.keys import request_id


def _wait_for_small(url: str, base_url: str, backlog: int, batch: int, settings_for: Callable[..., Any],
                    items_of: Callable[..., list[dict[str, Any]]], fifo: bool) -> tuple[float, int, float]:
    """(B's wait in s, batches packed until all of B's were in one, median s between creates)."""
    from batchline.producers.producer import Producer
    from batchline.workers import aggregator
    from batchline.workers.context import Context

    s = settings_for(url, "fs", anthropic_base_url=base_url, max_batch_requests=batch,
                     max_requests_in_flight=backlog * 3)
    ctx = Context(s)
    ctx.redis.flushdb()
    producer = Producer(ctx.redis, s)
    assert producer.submit_many(items_of(backlog, prefix="a-", target_bytes=256), tenant="A").accepted == backlog
    first = aggregator.pack_once(ctx)
    assert first is not None and first.outcome == "submitted"
    small_tenant = "A" if fifo else "B"
    small = items_of(50, prefix="b-", target_bytes=256)
    t0 = time.perf_counter()
    assert producer.submit_many(small, tenant=small_tenant).accepted == 50
    rids = [ctx.keys.request(request_id(small_tenant, it["custom_id"])) for it in small]
    created_at: list[float] = []
    batches = 0
    while True:
        created = aggregator.pack_once(ctx)
        assert created is not None and created.outcome == "submitted", created
        created_at.append(time.perf_counter())
        batches += 1
        pipe = ctx.redis.pipeline(transaction=False)
        for key in rids:
            pipe.hget(key, R.STATE)
        if all(state != b"queued" for state in pipe.execute()):
            break
    wait = created_at[-1] - t0
    gaps = [b - a for a, b in zip([t0, *created_at], created_at, strict=False)]
    ctx.redis.flushdb()
    ctx.redis.close()
    return wait, batches, statistics.median(gaps)


def bench_wait(report: Any, url: str, base_url: str, backlog: int, settings_for: Callable[..., Any],
               items_of: Callable[..., list[dict[str, Any]]], verdict: Callable[[bool], str]) -> None:
    batch = max(1000, backlog // 10)
    print(f"[fair share] tenant B's 50 requests beside tenant A's backlog of {backlog:,} ({batch:,} per batch)",
          flush=True)
    fair_s, fair_n, interval = _wait_for_small(url, base_url, backlog, batch, settings_for, items_of, fifo=False)
    fifo_s, fifo_n, _ = _wait_for_small(url, base_url, backlog, batch, settings_for, items_of, fifo=True)
    size = f"A: {backlog:,} queued, B: 50; {batch:,} per batch"
    report.add("7 fair share", "B's wait, per-tenant lists filled by weight (batches packed until B's are in one)",
               size, f"{fair_s:.2f} s ({fair_n} batch; one batch interval: {interval:.2f} s)",
               "all of B's in the next batch packed", verdict(fair_n == 1))
    report.add("7 fair share", "baseline: one FIFO for everyone (B's 50 behind A's backlog, as 0.1)", size,
               f"{fifo_s:.2f} s ({fifo_n} batches)")


def bench_claim(report: Any, url: str, n: int, settings_for: Callable[..., Any],
                items_of: Callable[..., list[dict[str, Any]]], verdict: Callable[[bool], str],
                repeats: int = 3) -> None:
    from batchline.producers.producer import Producer
    from batchline.workers import aggregator
    from batchline.workers.context import Context
    from batchline.workers.packing import Take

    print(f"[fair share] claim of {n:,} from 100 tenants vs from one", flush=True)
    s = settings_for(url, "fc")
    ctx = Context(s.replace(anthropic_api_key="unused"))
    r: redis.Redis = ctx.redis
    times: dict[int, list[float]] = {1: [], 100: []}
    for _ in range(repeats):
        for tenants in (1, 100):
            r.flushdb()
            producer = Producer(r, s)
            items = items_of(n, prefix="c-")
            for t in range(tenants):
                assert producer.submit_many(items[t::tenants], tenant=f"t{t}").accepted == len(items[t::tenants])
            t0 = time.perf_counter()
            _, _, flat = aggregator.claim(ctx, Take(n, s.max_batch_bytes, "full"))
            times[tenants].append(time.perf_counter() - t0)
            assert len(flat) == 2 * n
    r.flushdb()
    r.close()
    one, many = statistics.median(times[1]), statistics.median(times[100])
    report.add("7 fair share", f"claim of {n:,} ~1 KB requests from 1 tenant (median of {repeats})", f"{n:,}",
               f"{one * 1000:.0f} ms")
    report.add("7 fair share", f"claim of the same from 100 tenants (median of {repeats})", f"{n:,}",
               f"{many * 1000:.0f} ms ({many / one:.2f}x)", "≤ 1.5x one tenant", verdict(many <= 1.5 * one))
