"""Deadlines benchmark (row 13 of benchmarks/run.py).

2,000 requests, 10% with deadlines shorter than the emulator's batch time (its own process, batches
made slow): half nearer than the expected turnaround (real-time at once), half left to their batch and
hedged when it runs late. The pipeline's plain functions run in rounds, as the tasks would, real-time
calls on 8 threads. Reported: every deadline request delivered before its deadline and every request
exactly once; real-time share; wasted spend; the run's cost as a ratio to the same requests all by batch
and all real-time. Those two baselines are priced from the same run's usage (every delivered answer's
standard price, and that at the batch discount): the emulator answers a prompt alike either way.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from batchline.keys import REALTIME_BATCH

BATCH_SECONDS = 12.0  # the emulator's batch processing time in this row
SOON_S, LATER_S = 4, 10  # deadlines: both shorter than a batch
TURNAROUND_S, MARGIN_S = 8.0, 7.0


def _items(n: int, items_of: Callable[..., list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], int]:
    items = items_of(n, prefix="d-", target_bytes=256)
    k = n // 10
    for i, it in enumerate(items[:k]):
        it["deadline_seconds"] = SOON_S if i < k // 2 else LATER_S
    return items, k


def _drive(ctx: Any, n: int, pool: ThreadPoolExecutor, timeout: float = 180.0) -> None:
    from batchline.workers import aggregator, deadlines, poller, realtime, results, sweeper

    handed: list[str] = []
    calls: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        routed = deadlines.tick(ctx)
        calls += [pool.submit(realtime.answer, ctx, rid) for rid in routed.calls]
        aggregator.pack(ctx)
        ctx.redis.delete(ctx.keys.poll_lock())
        poller.poll(ctx, handed.append)
        while handed:
            results.collect(ctx, handed.pop())
        sweeper.sweep(ctx, handed.append)
        calls = [c for c in calls if not c.done() or c.result() is None]
        k = ctx.keys
        if (
            ctx.redis.xlen("dl-out") >= n
            and not calls
            and not ctx.redis.zcard(k.open)
            and not ctx.redis.zcard(k.ended)
            and not ctx.redis.zcard(k.realtime)
        ):
            return
        time.sleep(0.1)
    raise RuntimeError("deadlines row did not drain")


def bench(
    report: Any,
    url: str,
    n: int,
    settings_for: Callable[..., Any],
    items_of: Callable[..., list[dict[str, Any]]],
    emulator_process: Callable[..., Any],
    verdict: Callable[[bool], str],
) -> None:
    from batchline.producers.producer import Producer
    from batchline.reports import cost_rows
    from batchline.workers.context import Context

    with emulator_process(BATCH_SECONDS) as base_url:
        s = settings_for(
            url,
            "dl",
            anthropic_base_url=base_url,
            max_batch_requests=10_000,
            min_deadline_seconds=1.0,
            batch_turnaround_seconds=TURNAROUND_S,
            deadline_margin_seconds=MARGIN_S,
        )
        ctx = Context(s)
        ctx.redis.flushdb()
        items, k = _items(n, items_of)
        producer = Producer(ctx.redis, s)
        t0 = time.perf_counter()
        assert producer.submit_many(items, reply_to="redis-stream:dl-out").accepted == n
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="realtime") as pool:
            _drive(ctx, n, pool)
        wall = time.perf_counter() - t0
        seen: Counter[str] = Counter()
        plain = {it["custom_id"] for it in items if "deadline_seconds" not in it}
        plain_by_batch = 0  # requests without a deadline answered by a provider batch
        for _, raw in ctx.redis.xrange("dl-out"):
            cid = raw[b"custom_id"].decode()
            seen[cid] += 1
            plain_by_batch += cid in plain and raw[b"batch_id"].decode() != REALTIME_BATCH
        once = len(seen) == n and max(seen.values()) == 1
        met = 0
        path_counts: Counter[str] = Counter()
        for it in items:
            st = producer.status(it["custom_id"])
            assert st is not None
            path_counts[st["path"]] += 1
            if "deadline_seconds" in it:
                met += bool(st.get("deadline_met"))
        paths = path_counts["batch"]
        rows = cost_rows(ctx.redis, ctx.keys)
        batch = sum(r.batch_usd for r in rows)
        rt = sum(r.realtime_usd for r in rows)
        wasted = sum(r.wasted_usd for r in rows)
        rt_n = sum(r.realtime_requests for r in rows)
        all_rt = sum(r.standard_usd for r in rows) + rt  # every delivered answer at standard price
        all_batch = all_rt * ctx.prices.batch_discount
        run = batch + rt + wasted
        size = (
            f"{n:,} x ~256 B, {k} with deadlines ({k // 2} x {SOON_S} s, {k // 2} x {LATER_S} s); "
            f"batches take {BATCH_SECONDS:g} s"
        )
        report.add(
            "13 deadlines",
            f"deadline requests delivered before their deadline; every request exactly once "
            f"({path_counts['realtime']} real-time at once, {path_counts['hedged']} hedged, {paths} by batch; "
            f"{wall:.1f} s)",
            size,
            f"{met} of {k}; {'once' if once else 'NOT once'}",
            f"{k} of {k}, once",
            verdict(met == k and once and plain_by_batch == n - k and paths == n - k),
        )
        report.add(
            "13 deadlines",
            "real-time share (answers delivered from `messages.create`)",
            "",
            f"{rt_n / n:.1%} ({rt_n:,} of {n:,})",
            "",
        )
        report.add(
            "13 deadlines",
            "wasted spend (answers paid for and not delivered: hedges' losers)",
            "",
            f"${wasted:.4f} ({wasted / run:.1%} of the run)" if run else "$0",
            "",
        )
        report.add(
            "13 deadlines",
            "baselines from the same run's usage: all by batch / all real-time",
            "",
            f"${all_batch:.4f} / ${all_rt:.4f}",
            "",
        )
        report.add(
            "13 deadlines",
            "the run's cost (batch + real-time + wasted) ÷ all by batch; ÷ all real-time",
            f"${run:.4f}",
            f"{run / all_batch:.2f}x; {run / all_rt:.2f}x",
            "≤ 0.6x all real-time",
            verdict(run / all_rt <= 0.6),
        )
        ctx.redis.flushdb()
        ctx.redis.close()
