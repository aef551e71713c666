"""Rows 10-12: large requests kept by reference (docs/large-requests.md), each beside a baseline of
the same run: intake of ~1 MB requests vs plain threaded PUTs of the same objects, Redis bytes per
queued large request, the aggregator's peak RSS streaming a large create body, and ~1 MB requests
end to end through real worker and beat processes on a Redis of `maxmemory 256mb` beside ~1 KB inline
requests of the same count through the same processes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
import redis

from batchline.config.settings import Settings
from batchline.local_services import BatchlineProcess, RedisServer, pipeline_env
from batchline.producers.producer import Producer

ROOT = Path(__file__).resolve().parents[1]
DOC = 1_000_000  # bytes of params per large request


def doc_items(n: int, prefix: str) -> list[dict[str, Any]]:
    return list(iter_docs(n, prefix))


def iter_docs(n: int, prefix: str, size: int = DOC) -> Iterator[dict[str, Any]]:
    """`n` distinct requests of ~`size` bytes of params, made one at a time (2 GB are never held)."""
    for i in range(n):
        blob = (hashlib.sha256(f"{prefix}{i}".encode()).hexdigest() * (size // 64 + 1))[:size]
        content = [{"type": "text", "text": blob}, {"type": "text", "text": "?"}]
        yield {"custom_id": f"{prefix}{i}", "params": {
            "model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": content}]}}


def bucket(s3_url: str) -> str:
    name = f"bench-large-{hashlib.sha256(s3_url.encode()).hexdigest()[:8]}"
    client = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=name)
    return name


def bench_intake(report: Any, r: redis.Redis, url: str, s3_url: str, n: int, plain_puts: Callable[..., float],
                 verdict: Callable[[bool], str]) -> None:
    print(f"[large intake] {n} requests of ~1 MB", flush=True)
    r.flushdb()
    name = bucket(s3_url)
    s = Settings(redis_url=url, key_prefix="lg", s3_bucket=name, s3_endpoint_url=s3_url)
    producer = Producer.from_settings(s)
    items = doc_items(n, "L")
    producer.submit("warm", items[0]["params"])  # clients connected before the clock starts
    before = int(r.info("memory")["used_memory"])
    t0 = time.perf_counter()
    assert producer.submit_many(items[1:]).accepted == n - 1
    ours = (n - 1) / (time.perf_counter() - t0)
    per_request = (int(r.info("memory")["used_memory"]) - before) / (n - 1)
    producer.close()
    body = json.dumps(items[0]["params"]).encode()
    base = plain_puts(s3_url, name, n - 1, body, s.s3_put_threads)
    ratio = ours / base
    report.add("10 large intake", "`submit_many` of ~1 MB requests (PUT to S3 by digest, then intake.lua) (a) vs "
               f"plain threaded boto3 `put_object` of the same bodies (b) [{ours:,.1f} vs {base:,.1f} objects/s]",
               f"{n - 1} x 1 MB", f"(a) ÷ (b) = {ratio:.2f}", "≥ 0.7", verdict(ratio >= 0.7))
    report.add("10b Redis per large request", "Redis `used_memory` growth per queued large request",
               f"{n - 1} x 1 MB", f"{per_request:,.0f} B", "< 2 KB", verdict(per_request < 2048))
    r.flushdb()


def bench_create_rss(report: Any, r: redis.Redis, url: str, base_url: str, s3_url: str, megabytes: int,
                     verdict: Callable[[bool], str]) -> None:
    n = megabytes
    print(f"[large create] one batch of {n} x 1 MB requests, streamed from S3", flush=True)
    r.flushdb()
    name = bucket(s3_url)
    fields: dict[str, Any] = dict(redis_url=url, key_prefix="lc", s3_bucket=name, s3_endpoint_url=s3_url,
                                  anthropic_api_key="bench", anthropic_base_url=base_url, max_wait_seconds=0.0,
                                  max_batch_requests=n, max_batch_bytes=255_000_000, create_timeout_seconds=600.0)
    producer = Producer.from_settings(Settings(**fields))
    for start in range(0, n, 50):  # built and submitted 50 at a time: the bench's own memory stays small
        assert producer.submit_many(doc_items(min(50, n - start), f"C{start}-")).accepted == min(50, n - start)
    producer.close()
    out = subprocess.run([sys.executable, "-m", "benchmarks.createchild", json.dumps(fields)], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"create child failed: {out.stderr[-3000:]}")
    m = json.loads(out.stdout.strip().splitlines()[-1])
    assert m["outcome"] == "submitted" and m["requests"] == n, m
    peak, before = m["peak_hwm_kb"] / 1024, m["before_rss_kb"] / 1024
    report.add("11 large create", "aggregator: claim + streamed create body (inline pieces and S3 objects) → "
               f"emulator, peak RSS (VmHWM) [RSS before {before:.0f} MB, {m['bytes'] / 1e6:.0f} MB body in "
               f"{m['seconds']:.1f} s]", f"{n} x 1 MB", f"{peak:.0f} MB", "≤ 300 MB", verdict(peak <= 300))
    r.flushdb()


MAXMEMORY = 256 * 1024 * 1024


def through_workers(base_url: str, s3_url: str, prefix: str, n: int, items: Iterable[dict[str, Any]],
                    timeout: float) -> dict[str, Any]:
    """`items` submitted to a fresh redis-server of `maxmemory 256mb` (noeviction), then delivered by a
    `batchline worker --role all` and a `batchline beat` (as tests/e2e/test_large_requests_e2e.py runs
    them) to one reply stream: Redis bytes per queued request, its `used_memory_peak`, seconds, and
    how many custom_ids were delivered once and more than once."""
    server = RedisServer(appendonly=False).start()
    procs: list[BatchlineProcess] = []
    try:
        client = redis.Redis.from_url(server.url)
        client.config_set("maxmemory", MAXMEMORY)
        client.config_set("maxmemory-policy", "noeviction")
        env = pipeline_env(server.url, prefix, base_url, bucket(s3_url), s3_url,
                           BATCHLINE_PARAMS_GC_GRACE_SECONDS="0", BATCHLINE_MAX_BATCH_REQUESTS="250",
                           BATCHLINE_CREATE_TIMEOUT_SECONDS="120", BATCHLINE_CLAIM_LEASE_SECONDS="60",
                           BATCHLINE_COLLECT_LEASE_SECONDS="30", BATCHLINE_LOG_LEVEL="WARNING",
                           # 2 GB queued at once: over the default byte limits (which count the documents)
                           BATCHLINE_MAX_QUEUED_BYTES=str(8 * 10**9), BATCHLINE_TENANT_MAX_QUEUED_BYTES=str(8 * 10**9))
        producer = Producer.from_settings(Settings.from_env(env))
        before = int(client.info("memory")["used_memory"])
        t0 = time.perf_counter()
        assert producer.submit_many(items, reply_to="redis-stream:replies", chunk_size=100).accepted == n
        intake_s = time.perf_counter() - t0
        per_request = (int(client.info("memory")["used_memory"]) - before) / n
        producer.close()
        procs = [BatchlineProcess(["worker", "--role", "all", "--concurrency", "2"], env, supervise=False).start(),
                 BatchlineProcess(["beat"], env, supervise=False).start()]
        deadline = time.monotonic() + timeout
        while client.xlen("replies") < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{client.xlen('replies')} of {n} delivered in {timeout:.0f} s\n"
                                   + "\n".join(p.log()[-3000:] for p in procs))
            time.sleep(0.2)
        total_s = time.perf_counter() - t0
        time.sleep(2.0)  # a late second delivery would show here
        ids = Counter(raw[b"custom_id"] for _, raw in client.xrange("replies"))
        outcomes = Counter(raw[b"outcome"] for _, raw in client.xrange("replies"))
        return {"intake_s": intake_s, "total_s": total_s, "per_request": per_request, "once": len(ids),
                "twice": sum(1 for c in ids.values() if c > 1), "succeeded": outcomes[b"succeeded"],
                "peak": int(client.info("memory")["used_memory_peak"])}
    finally:
        for p in procs:
            p.stop()
        server.stop()


def bench_end_to_end(report: Any, base_url: str, s3_url: str, n: int, small_items: Callable[..., Any],
                     verdict: Callable[[bool], str]) -> None:
    print(f"[large end to end] {n} x 1 MB vs {n} x 1 KB inline, worker + beat, Redis maxmemory 256mb", flush=True)
    small = through_workers(base_url, s3_url, "es", n, small_items(n, "s"), 120)
    large = through_workers(base_url, s3_url, "el", n, iter_docs(n, "E"), 600)
    once = large["once"] == large["succeeded"] == n and large["twice"] == 0
    report.add("12 large end to end", f"{n} ~1 MB requests submitted, then delivered by `batchline worker` + `beat` "
               "(emulator, moto S3, Redis `maxmemory 256mb`) to a Redis stream, delivered once each (a) "
               f"[{large['intake_s']:.0f} s intake, {large['total_s']:.0f} s to the last delivery; {n} ~1 KB "
               f"inline (b): {small['intake_s']:.1f} s, {small['total_s']:.0f} s, {small['once']} once]",
               f"{n} x 1 MB ({n * DOC / 1e9:.1f} GB)", f"{large['once']} once, {large['twice']} twice",
               f"all {n} once", verdict(once and small["once"] == n and small["twice"] == 0))
    report.add("12b Redis per queued large request", "Redis `used_memory` growth per queued request after intake, "
               f"~1 MB (a) vs ~1 KB inline (b) [(b) {small['per_request']:,.0f} B; `used_memory_peak` (a) "
               f"{large['peak'] / 2**20:.0f} MB, (b) {small['peak'] / 2**20:.0f} MB of 256 MB]",
               f"{n} x 1 MB", f"{large['per_request']:,.0f} B", "< 2 KB", verdict(large["per_request"] < 2048))
