"""Row 9: what BATCHLINE_REDIS_MIN_REPLICAS=1 costs. Intake and fan-out on a primary with one local
replica (real redis-servers on loopback), each as a ratio to the same run with 0 (no WAIT)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from batchline.local_sentinel import wait_in_sync
from batchline.local_services import RedisServer


def replicated_pair() -> tuple[RedisServer, RedisServer]:
    primary = RedisServer(appendonly=False).start()
    replica = RedisServer(appendonly=False, extra=["--replicaof", "127.0.0.1", str(primary.port)]).start()
    client = redis.Redis(port=primary.port)
    wait_in_sync(client, 1)
    client.execute_command("WAIT", 1, 5000)
    return primary, replica


def bench_replicas(report: Any, base_url: str, n_intake: int, n_fanout: int, settings_for: Callable[..., Any],
                   items_of: Callable[..., list[dict[str, Any]]], submit_and_pack: Callable[..., str],
                   close_context: Callable[[Any], None], verdict: Callable[[bool], str]) -> None:
    from batchline.producers.producer import Producer
    from batchline.workers import results
    from batchline.workers.context import Context

    primary, replica = replicated_pair()
    try:
        r = redis.Redis(port=primary.port)
        items = items_of(n_intake, prefix="rp")
        intake: dict[int, float] = {}
        fanout: dict[int, float] = {}
        for replicas in (0, 1):
            print(f"[replicas] intake of {n_intake:,} with MIN_REPLICAS={replicas}", flush=True)
            r.flushdb()
            producer = Producer(redis.Redis(port=primary.port), settings_for(primary.url, "rp",
                                                                           redis_min_replicas=replicas))
            t0 = time.perf_counter()
            rep = producer.submit_many(items)
            intake[replicas] = n_intake / (time.perf_counter() - t0)
            assert rep.accepted == n_intake, rep
            producer.close()

            print(f"[replicas] fan-out of {n_fanout:,} lines with MIN_REPLICAS={replicas}", flush=True)
            r.flushdb()
            ctx = Context(settings_for(primary.url, "rf", anthropic_base_url=base_url, max_batch_requests=n_fanout,
                                       redis_min_replicas=replicas))
            bid = submit_and_pack(ctx, items_of(n_fanout, prefix="rf"), "redis-stream:bench-rep")
            t0 = time.perf_counter()
            done = results.collect(ctx, bid)
            fanout[replicas] = n_fanout / (time.perf_counter() - t0)
            assert done.delivered == n_fanout and r.xlen("bench-rep") == n_fanout, done
            close_context(ctx)
        r.flushdb()
    finally:
        replica.stop()
        primary.stop()
    for what, figures, unit in (("intake", intake, "req/s"), ("fan-out", fanout, "results/s")):
        report.add("9 replicas", f"{what}, BATCHLINE_REDIS_MIN_REPLICAS=0 (primary + 1 replica on loopback)",
                   f"{n_intake if what == 'intake' else n_fanout:,}", f"{figures[0]:,.0f} {unit}")
        report.add("9 replicas", f"{what}, BATCHLINE_REDIS_MIN_REPLICAS=1 (WAIT after each write)",
                   f"{n_intake if what == 'intake' else n_fanout:,}", f"{figures[1]:,.0f} {unit}")
        ratio = figures[1] / figures[0]
        report.add("9 replicas", f"{what}: MIN_REPLICAS=1 ÷ 0", "", f"{ratio:.2f}x", "≥ 0.7x", verdict(ratio >= 0.7))
