"""Gateway benchmarks (rows 5 and 6 of benchmarks/run.py): a client batch `create` through the gateway
with the official SDK against `Producer.submit_many` of the same requests, and the `results` stream of a
100,000-request client batch (lines/s, and the gateway's peak RSS at two batch sizes)."""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import redis

from batchline.config.settings import Settings
from batchline.keys import Keys
from batchline.local_services import BatchlineProcess, free_port, wait_for_port
from batchline.pending import count as pending_count
from batchline.tenants import Tenant, TenantStore


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


@contextmanager
def gateway_process(url: str, prefix: str) -> Iterator[tuple[str, int]]:
    """`batchline gateway` as its own process (it does not share the client's GIL); yields (base URL, pid)."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("BATCHLINE_")},
        "BATCHLINE_REDIS_URL": url,
        "BATCHLINE_KEY_PREFIX": prefix,
        "BATCHLINE_GATEWAY_RATE_LIMIT": "1000000",
        "BATCHLINE_LOG_LEVEL": "WARNING",
    }
    proc = BatchlineProcess(["gateway", "--port", str(port), "--log-level", "warning"], env, supervise=False).start()
    try:
        assert proc.proc is not None
        wait_for_port(port, proc=proc.proc)
        yield f"http://127.0.0.1:{port}", proc.proc.pid
    finally:
        proc.stop()


def bench_create(report: Any, r: redis.Redis, url: str, n: int, items_of: Any) -> None:
    import anthropic

    from batchline.producers.producer import Producer

    print(f"[gateway] create of {n:,} requests: SDK through the gateway vs Producer.submit_many", flush=True)
    items = items_of(n, prefix="g")
    r.flushdb()
    producer = Producer(redis.Redis.from_url(url), Settings(redis_url=url, key_prefix="gp"))
    producer.redis.ping()
    t0 = time.perf_counter()
    rep = producer.submit_many(items, tenant="bench")
    direct_s = time.perf_counter() - t0
    assert rep.accepted == n, rep
    producer.close()
    r.flushdb()
    key = TenantStore(r, Keys("gc")).add(Tenant("bench"))
    with gateway_process(url, "gc") as (base, _pid):
        client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=600)
        client.messages.batches.create(requests=items[:10])  # warm the connection and the gateway's imports
        requests = [{"custom_id": it["custom_id"], "params": it["params"]} for it in items]
        t0 = time.perf_counter()
        batch = client.messages.batches.create(requests=requests)
        gw_s = time.perf_counter() - t0
        assert batch.request_counts.processing == n
        client.close()
    assert pending_count(r, Keys("gc")) == n + 10
    r.flushdb()
    ratio = gw_s / direct_s
    size = f"{n:,} x ~1 KB"
    report.add(
        "5 gateway create", "`Producer.submit_many` (baseline)", size, f"{n / direct_s:,.0f} req/s ({direct_s:.2f} s)"
    )
    report.add(
        "5 gateway create",
        "SDK `messages.batches.create` through `batchline gateway`",
        size,
        f"{n / gw_s:,.0f} req/s ({gw_s:.2f} s)",
    )
    report.add("5 gateway create", "gateway ÷ submit_many (time)", "", f"{ratio:.2f}x", "≤ 3x", verdict(ratio <= 3))


def fabricate_ended_batch(r: redis.Redis, keys: Keys, tenant: str, n: int) -> str:
    """A client batch whose n results the result workers have appended (what deliver.lua writes to its stream);
    written here directly so that the figure is the gateway's read path alone."""
    gid = "msgbatch_" + secrets.token_hex(12)
    prefix = f"g{gid.removeprefix('msgbatch_')}_"
    stream = keys.gateway_results(gid)
    now = int(time.time() * 1000)
    pipe = r.pipeline(transaction=False)
    pipe.hset(
        keys.gateway_batch(gid),
        mapping={"tenant": tenant, "n": n, "created_at": now, "expires_at": now, "intake": "done"},
    )
    pipe.xadd(stream, {"marker": "created"})
    for start in range(0, n, 5000):
        pipe.hset(
            keys.gateway_custom_ids(gid), mapping={str(i): f"doc-{i}" for i in range(start, min(n, start + 5000))}
        )
    pipe.zadd(keys.gateway_tenant_batches(tenant), {gid: now})
    pipe.execute()
    for start in range(0, n, 2000):
        pipe = r.pipeline(transaction=False)
        for i in range(start, min(n, start + 2000)):
            result = {
                "type": "succeeded",
                "message": {
                    "id": f"msg_{i:024d}",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-haiku-4-5",
                    "content": [{"type": "text", "text": f"Reply {i:016x}"}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 25, "output_tokens": 12},
                },
            }
            pipe.xadd(
                stream,
                {
                    "custom_id": f"{prefix}{i}",
                    "tenant": tenant,
                    "outcome": "succeeded",
                    "s3_key": "",
                    "batch_id": "blb_x",
                    "result": orjson.dumps(result),
                },
            )
        pipe.execute()
    return gid


def stream_lines(base: str, key: str, gid: str) -> tuple[int, float]:
    import httpx2

    t0 = time.perf_counter()
    lines = 0
    with (
        httpx2.Client(timeout=600) as http,
        http.stream("GET", f"{base}/v1/messages/batches/{gid}/results", headers={"x-api-key": key}) as resp,
    ):
        assert resp.status_code == 200, resp.status_code
        for chunk in resp.iter_bytes(1 << 16):
            lines += chunk.count(b"\n")
    return lines, time.perf_counter() - t0


def bench_results(report: Any, r: redis.Redis, url: str, n: int) -> None:
    print(f"[gateway] results of a {n:,}-request client batch", flush=True)
    r.flushdb()
    keys = Keys("gr")
    key = TenantStore(r, keys).add(Tenant("bench"))
    small_n = max(1, n // 10)
    small, big = fabricate_ended_batch(r, keys, "bench", small_n), fabricate_ended_batch(r, keys, "bench", n)
    with gateway_process(url, "gr") as (base, pid):
        stream_lines(base, key, small)  # warm: imports, pools
        got, _ = stream_lines(base, key, small)
        assert got == small_n
        hwm_small = status_kb(pid, "VmHWM")
        got, seconds = stream_lines(base, key, big)
        assert got == n
        hwm_big = status_kb(pid, "VmHWM")
    r.flushdb()
    rate = n / seconds
    report.add(
        "6 gateway results",
        "`GET /v1/messages/batches/{id}/results` (JSON Lines, raw HTTP client)",
        f"{n:,} lines",
        f"{rate:,.0f} lines/s ({seconds:.2f} s)",
        "≥ 50,000 lines/s",
        verdict(rate >= 50_000),
    )
    growth = (hwm_big - hwm_small) / 1024
    report.add(
        "6 gateway results",
        f"gateway peak RSS (VmHWM) after {small_n:,} vs after {n:,} lines",
        f"{small_n:,} → {n:,} lines",
        f"{hwm_small / 1024:.0f} → {hwm_big / 1024:.0f} MB ({growth:+.0f} MB)",
        "flat (≤ +20 MB)",
        verdict(growth <= 20),
    )


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


if __name__ == "__main__":  # pragma: no cover - run through benchmarks.run
    sys.exit("run: python -m benchmarks.run --only gateway")
