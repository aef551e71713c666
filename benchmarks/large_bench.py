"""Rows 10-11: large requests kept by reference (docs/large-requests.md), each beside a baseline of
the same run: intake of ~1 MB requests vs plain threaded PUTs of the same objects, Redis bytes per
queued large request, and the aggregator's peak RSS streaming a large create body."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import redis

from batchline.config.settings import Settings
from batchline.producers.producer import Producer

ROOT = Path(__file__).resolve().parents[1]
DOC = 1_000_000  # bytes of params per large request


def doc_items(n: int, prefix: str) -> list[dict[str, Any]]:
    items = []
    for i in range(n):
        blob = (hashlib.sha256(f"{prefix}{i}".encode()).hexdigest() * (DOC // 64 + 1))[:DOC]
        content = [{"type": "text", "text": blob}, {"type": "text", "text": "?"}]
        items.append({"custom_id": f"{prefix}{i}", "params": {
            "model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": content}]}})
    return items


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
