"""Row 8: external reply targets. (a) webhook deliveries per second from the outbox
(`delivery.run_rounds`: claim, sign, per-host slots, settle) to a local receiver vs (b) a plain httpx
loop posting the same bodies with the same concurrency; (c) SQS on moto through the outbox vs (d) a
plain boto3 `send_message_batch` loop of the same bodies, ten per call."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import redis

from batchline.keys import Keys
from batchline.local_services import free_port, wait_for_port
from batchline.tenants import WebhookSecrets


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def receiver() -> Iterator[str]:
    """A loopback receiver in its own process (so it does not share the senders' GIL); its URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.delivery_bench", str(port)])
    try:
        wait_for_port(port, timeout=30, proc=proc)
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        proc.terminate()
        proc.wait(10)


def _outbox_ready(
    ctx: Any, n: int, reply_to: str, submit_and_pack: Callable[..., str], items_of: Callable[..., list[dict[str, Any]]]
) -> None:
    """Untimed: n requests through a real batch at the emulator into the outbox (state delivering)."""
    from batchline.workers import results

    bid = submit_and_pack(ctx, items_of(n, prefix="d", target_bytes=300), reply_to)
    rep = results.collect(ctx, bid)
    assert rep.handed == n, rep


def _drain(ctx: Any, n: int) -> float:
    """Outbox rounds as beat's tick runs them (`delivery.run_rounds`), until all n are delivered."""
    from batchline.workers import delivery

    t0 = time.perf_counter()
    done = 0
    while done < n:
        r = delivery.run_rounds(ctx, 60.0)
        done += r.delivered
        assert r.undeliverable == 0, r.errors
    return time.perf_counter() - t0


def _bodies(ctx: Any, n: int) -> list[bytes]:
    """The bodies the outbox would send (built the same way), for the baselines."""
    from batchline.workers import delivery

    rids = [m.decode() for m in ctx.redis.zrange(ctx.keys.outbox, 0, n - 1)]
    pipe = ctx.redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hmget(ctx.keys.request(rid), *delivery.FIELDS)
    _, groups = delivery._load(ctx, list(zip(rids, pipe.execute(), strict=True)))
    return [item.body for items in groups.values() for item in items]


@dataclass(frozen=True)
class Bench:
    """What run.py hands each row: the report, the Redis server, the emulator and its helpers."""

    report: Any
    r: redis.Redis
    url: str
    base_url: str
    settings_for: Callable[..., Any]
    submit_and_pack: Callable[..., str]
    items_of: Callable[..., list[dict[str, Any]]]
    verdict: Callable[[bool], str]


REPEATS = 3  # pairs of (ours, baseline), the order alternating; the ratio is the median of the pairs


def _plain_posts(client: Any, hook: str, bodies: list[bytes], threads: int) -> float:
    def post(body: bytes) -> None:
        resp = client.post(hook, content=body, headers={"content-type": "application/json"})
        assert resp.status_code == 204

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(post, bodies))
    return len(bodies) / (time.perf_counter() - t0)


def bench_webhooks(b: Bench, n: int) -> None:
    import httpx2

    from batchline.workers.context import Context

    ours, base = [], []
    with receiver() as hook, httpx2.Client(trust_env=False) as client:
        client.post(hook, content=b"{}")  # connect before the clock starts
        for repeat in range(REPEATS):
            b.r.flushdb()
            s = b.settings_for(
                b.url,
                "wh",
                anthropic_base_url=b.base_url,
                max_batch_requests=n,
                webhook_allow_http=True,
                webhook_allow_private=("127.0.0.1",),
            )
            ctx = Context(s)
            WebhookSecrets(b.r, Keys(s.key_prefix)).rotate("default")
            print(
                f"[delivery] {n:,} webhooks through the outbox, repeat {repeat + 1} of {REPEATS} "
                "(setup: submit, create, poll, collect)",
                flush=True,
            )
            _outbox_ready(ctx, n, hook, b.submit_and_pack, b.items_of)
            bodies = _bodies(ctx, n)
            if repeat % 2:
                base.append(_plain_posts(client, hook, bodies, s.webhook_max_concurrency))
                ours.append(n / _drain(ctx, n))
            else:
                ours.append(n / _drain(ctx, n))
                base.append(_plain_posts(client, hook, bodies, s.webhook_max_concurrency))
            ctx.redis.close()
    b.r.flushdb()
    concurrency = s.webhook_max_concurrency
    b.report.add(
        "8 delivery",
        f"(a) webhooks from the outbox (`delivery.run_rounds`: claim, Standard Webhooks "
        f"signature, per-host slots, settle), {concurrency} per host, loopback receiver (median of {REPEATS})",
        f"{n:,} results",
        f"{statistics.median(ours):,.0f} deliveries/s",
    )
    b.report.add(
        "8 delivery",
        f"(b) baseline: plain httpx2 loop, same bodies, {concurrency} threads, same receiver",
        f"{n:,} posts",
        f"{statistics.median(base):,.0f} posts/s",
    )
    ratio = statistics.median(o / p for o, p in zip(ours, base, strict=True))
    b.report.add(
        "8 delivery",
        f"(a) ÷ (b), median of the {REPEATS} pairs",
        "",
        f"{ratio:.2f}x",
        "≥ 0.8x",
        b.verdict(ratio >= 0.8),
    )


def _plain_batches(sqs: Any, queue: str, bodies: list[bytes]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(bodies), 10):
        entries = [{"Id": str(j), "MessageBody": body.decode()} for j, body in enumerate(bodies[i : i + 10])]
        assert not sqs.send_message_batch(QueueUrl=queue, Entries=entries).get("Failed")
    return len(bodies) / (time.perf_counter() - t0)


def bench_sqs(b: Bench, moto_url: str, n: int) -> None:
    """`n` messages each way, in REPEATS pairs of n / REPEATS on fresh queues, the order alternating:
    moto's SQS slows with each queue's length (every send scans it), and the machine's load drifts."""
    import boto3

    from batchline.workers.context import Context

    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1")
    each = max(10, n // REPEATS)
    ours, base = [], []
    for repeat in range(REPEATS):
        name = f"bench-{uuid.uuid4().hex[:8]}"
        queue = sqs.create_queue(QueueName=f"{name}-baseline")["QueueUrl"]  # one each, both fresh
        sqs.create_queue(QueueName=name)
        b.r.flushdb()
        s = b.settings_for(
            b.url,
            "sq",
            anthropic_base_url=b.base_url,
            max_batch_requests=each,
            sqs_endpoint_url=moto_url,
            sqs_region="us-east-1",
        )
        ctx = Context(s)
        print(
            f"[delivery] {each:,} SQS messages through the outbox on moto, repeat {repeat + 1} of {REPEATS} "
            "(setup: submit, create, poll, collect)",
            flush=True,
        )
        _outbox_ready(ctx, each, f"sqs:{name}", b.submit_and_pack, b.items_of)
        bodies = _bodies(ctx, each)
        ctx.sqs.get_queue_url(QueueName=name)  # connect before the clock starts, as the baseline does
        if repeat % 2:
            base.append(_plain_batches(sqs, queue, bodies))
            ours.append(each / _drain(ctx, each))
        else:
            ours.append(each / _drain(ctx, each))
            base.append(_plain_batches(sqs, queue, bodies))
        ctx.redis.close()
    b.r.flushdb()
    b.report.add(
        "8 delivery",
        f"(c) SQS from the outbox (`send_message_batch`, ten per call) on moto, fresh queues (median of {REPEATS})",
        f"{REPEATS} x {each:,} results",
        f"{statistics.median(ours):,.0f} messages/s",
    )
    b.report.add(
        "8 delivery",
        "(d) baseline: plain boto3 `send_message_batch` loop, same bodies, same server, fresh queues",
        f"{REPEATS} x {each:,} messages",
        f"{statistics.median(base):,.0f} messages/s",
    )
    ratio = statistics.median(o / p for o, p in zip(ours, base, strict=True))
    b.report.add(
        "8 delivery",
        f"(c) ÷ (d), median of the {REPEATS} pairs",
        "",
        f"{ratio:.2f}x",
        "≥ 0.8x",
        b.verdict(ratio >= 0.8),
    )


if __name__ == "__main__":  # the receiver process: python -m benchmarks.delivery_bench PORT
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Ok)
    server.daemon_threads = True
    server.serve_forever()
