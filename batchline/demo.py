"""`batchline demo`: the whole pipeline on this machine, on embedded defaults (no API key, no cloud).

Starts (or reuses) Redis, the emulator, moto's S3 server, a worker for every role and beat, as real
processes; submits the shipped sample; shows progress; prints a summary; stops what it started.
Exits 0 only when every accepted request was delivered and nothing unexpected was rejected.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from batchline import demo_webhooks
from batchline.config.settings import Settings
from batchline.local_services import BatchlineProcess, MotoS3, RedisServer, free_port, wait_for_port
from batchline.redis_client import connect, stream_entries
from batchline.redis_url import masked

if TYPE_CHECKING:
    from batchline.producers.producer import Producer, Rejection

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sample_requests.jsonl"
BUCKET = "batchline-demo"
EXAMPLES_PER_REASON = 3
CUT = 120  # characters of a rejection reason shown


class DemoInputError(Exception):
    """The --file cannot be used: missing, unreadable, or not JSON Lines of objects."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", default=str(SAMPLE), help="JSONL requests (default: the shipped sample)")
    parser.add_argument("--limit", type=int, default=None, help="submit only the first N requests of the file")
    parser.add_argument("--expect-rejected", type=int, default=0,
                        help="how many rejections the file is known to hold (default 0; more fails the demo)")
    parser.add_argument("--documents", type=int, default=200,
                        help="also submit this many extraction requests of ~1 MB (a base64 PDF each), kept by "
                             "reference in S3 (docs/large-requests.md); default 200, 0 for none")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    parser.add_argument("--keep-logs", default=".demo", help="folder for the processes' logs")
    parser.add_argument("--webhooks", type=int, default=100,
                        help="requests delivered to a signed webhook on loopback (default 100; 0: none)")
    parser.add_argument("--flower", action="store_true",
                        help="start Flower beside the demo (loopback, a free port, credentials printed)")


def reachable_redis(url: str) -> bool:
    try:
        return bool(connect(url).ping())
    except (redis.RedisError, ValueError):
        return False


def reply_stream(run: str, tenant: str) -> str:
    """The demo's reply streams are a caller's streams like any other: outside batchline's key prefix."""
    return f"demo-replies:{run}:{tenant}"


def load(path: str, run: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The requests of a JSONL file, each replying on this run's stream for its tenant."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DemoInputError(f"--file {path}: cannot read it ({exc.__class__.__name__}: {exc})") from exc
    items: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DemoInputError(f"--file {path}: line {number} is not JSON ({exc.msg})") from exc
        if not isinstance(item, dict):
            raise DemoInputError(f"--file {path}: line {number} is not a JSON object")
        tenant = item["tenant"] if isinstance(item.get("tenant"), str) else "default"
        item["reply_to"] = f"redis-stream:{reply_stream(run, tenant)}"
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise DemoInputError(f"--file {path}: holds no requests")
    return items


DOC_BYTES = 1_000_000  # base64 characters of each document of the document sample


def documents(run: str, n: int) -> list[dict[str, Any]]:
    """The document sample: `n` extraction requests of a ~1 MB base64 "PDF" each, tenant `docs`."""
    items: list[dict[str, Any]] = []
    for i in range(n):
        raw = hashlib.sha256(f"{run}:{i}".encode()).digest() * (DOC_BYTES * 3 // 4 // 32)
        block = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                                "data": base64.b64encode(raw).decode()}}
        content = [block, {"type": "text", "text": "Extract the invoice total."}]
        params = {"model": "claude-haiku-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": content}]}
        items.append({"custom_id": f"doc-{i}", "tenant": "docs", "params": params,
                      "reply_to": f"redis-stream:{reply_stream(run, 'docs')}"})
    return items


def rejection_groups(rejected: list[Rejection]) -> list[tuple[str, int, list[str]]]:
    """Rejections grouped by field and rule: (field: rule cut short, count, a few example ids)."""
    groups: dict[str, list[Rejection]] = defaultdict(list)
    for r in rejected:
        rule = r.reason if len(r.reason) <= CUT else r.reason[: CUT - 1] + "…"
        groups[f"{r.field}: {rule}"].append(r)
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    return [
        (what, len(rs), [(r.custom_id or f"item {r.index}")[:64] for r in rs[:EXAMPLES_PER_REASON]])
        for what, rs in ordered
    ]


def delivered_outcomes(client: redis.Redis, streams: list[str]) -> tuple[Counter[str], int]:
    """Outcomes of the distinct (tenant, custom_id) delivered on the run's streams, and the repeats."""
    seen: dict[tuple[str, str], str] = {}
    repeats = 0
    for stream in streams:
        for fields in stream_entries(client, stream):
            key = (fields["tenant"], fields["custom_id"])
            repeats += key in seen
            seen[key] = fields["outcome"]
    return Counter(seen.values()), repeats


def run(args: argparse.Namespace) -> int:
    run_id = f"demo{int(time.time())}"
    try:
        if args.limit is not None and args.limit < 1:
            raise DemoInputError(f"--limit {args.limit}: must be at least 1")
        items = load(args.file, run_id, args.limit)
        if args.documents < 0:
            raise DemoInputError(f"--documents {args.documents}: must be at least 0")
    except DemoInputError as exc:
        print(f"batchline demo: {exc}", file=sys.stderr)
        return 2
    return run_pipeline(args, run_id, items)


def run_pipeline(args: argparse.Namespace, prefix: str, items: list[dict[str, Any]]) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from batchline.producers.producer import Producer

    console = Console()
    logs = Path(args.keep_logs)
    logs.mkdir(exist_ok=True)
    base = Settings.from_env()
    stack: list[Any] = []
    try:
        url = base.redis_url
        if reachable_redis(url):
            console.print(f"Redis: using the one at {masked(url)}", markup=False)
        else:
            server = RedisServer(directory=str((logs / "redis").resolve())).start()
            stack.append(server)
            url = server.url
            console.print(f"Redis: started an embedded redis-server on {url}")
        port = free_port()
        emulator = BatchlineProcess(["emulator", "--port", str(port), "--processing-seconds", "2:6",
                                     "--seed", "1"], dict(os.environ), str(logs / "emulator.log")).start()
        stack.append(emulator)
        wait_for_port(port, proc=emulator.proc)
        s3 = MotoS3().start()
        stack.append(s3)
        import boto3

        from batchline.objects import S3Store

        boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1", aws_access_key_id="demo",
                     aws_secret_access_key="demo").create_bucket(Bucket=BUCKET)
        env = {
            **os.environ, "BATCHLINE_REDIS_URL": url, "BATCHLINE_KEY_PREFIX": prefix,
            "ANTHROPIC_API_KEY": "emulator-demo-key", "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}",
            "BATCHLINE_S3_BUCKET": BUCKET, "BATCHLINE_S3_ENDPOINT_URL": s3.url,
            "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo", "AWS_DEFAULT_REGION": "us-east-1",
            "BATCHLINE_MAX_BATCH_REQUESTS": os.environ.get("BATCHLINE_MAX_BATCH_REQUESTS", "1000"),
            "BATCHLINE_MAX_WAIT_SECONDS": os.environ.get("BATCHLINE_MAX_WAIT_SECONDS", "2"),
            "BATCHLINE_POLL_INTERVAL_SECONDS": os.environ.get("BATCHLINE_POLL_INTERVAL_SECONDS", "1"),
            "BATCHLINE_PACK_INTERVAL_SECONDS": "0.5", "BATCHLINE_SWEEP_INTERVAL_SECONDS": "5",
            "BATCHLINE_LOG_FORMAT": "json", **demo_webhooks.ENV,
        }
        flower = None
        if args.flower:
            from batchline import demo_flower

            flower = demo_flower.start(stack, env, logs)
            console.print(f"Flower: {flower.url} (user {flower.user}, password {flower.password})", markup=False)
        for role in ("aggregator", "poller", "results", "delivery"):
            stack.append(BatchlineProcess(["worker", "--role", role, "--concurrency", "1"], env,
                                          str(logs / f"worker-{role}.log")).start())
        stack.append(BatchlineProcess(["beat"], env, str(logs / "beat.log")).start())
        console.print(f"Emulator on :{port}, S3 (moto) on {s3.url}, workers for aggregator/poller/results/delivery,"
                      f" beat; logs in {logs}/")
        console.print(f"key prefix {prefix}", markup=False)

        settings = Settings.from_env(env)
        client_batch = gateway_batch(console, stack, env, settings, logs)
        # this process's own S3 client, with the demo's credentials (the workers get them in `env`)
        demo_s3 = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1", aws_access_key_id="demo",
                               aws_secret_access_key="demo")
        producer = Producer.from_settings(settings, store=S3Store(demo_s3, BUCKET))
        report = producer.submit_many(items)
        console.print(f"Submitted {len(items)} requests: accepted {report.accepted}, duplicate "
                      f"{report.duplicate}, rejected {len(report.rejected)}")
        for what, count, examples in rejection_groups(report.rejected):
            console.print(f"  rejected {count}: {what}  (e.g. {', '.join(examples)})", markup=False)
        streams = sorted({i["reply_to"].removeprefix("redis-stream:") for i in items})
        if args.documents:
            docs = documents(prefix, args.documents)
            started = time.monotonic()
            stored = producer.submit_many(docs, chunk_size=50)
            console.print(f"Submitted {len(docs)} documents of ~1 MB (kept in S3, pointers in Redis) in "
                          f"{time.monotonic() - started:.1f} s: accepted {stored.accepted}, "
                          f"rejected {len(stored.rejected)}")
            report.accepted += stored.accepted
            report.duplicate += stored.duplicate
            report.rejected += stored.rejected
            streams.append(reply_stream(prefix, "docs"))
        hooks = None
        if args.webhooks:
            hooks = demo_webhooks.start(stack, producer.redis, producer.keys)
            sent = demo_webhooks.submit(producer, hooks, args.webhooks)
            console.print(f"Submitted {args.webhooks} requests for tenant {demo_webhooks.TENANT} with reply_to "
                          f"{hooks.receiver.url} (signed webhooks): accepted {sent.accepted}", markup=False)
        expected = report.accepted
        done = 0
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("delivered", total=expected)
            deadline = time.monotonic() + args.timeout
            while expected and done < expected and time.monotonic() < deadline:
                time.sleep(0.5)
                done = sum(producer.redis.xlen(s) for s in streams)
                bar.update(task, completed=done)
        outcomes, repeats = summary(console, producer, streams, settings)
        delivered = sum(outcomes.values())
        console.print(f"accepted {report.accepted}, delivered {delivered} "
                      f"({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items())) or 'nothing'}), "
                      f"delivered twice {repeats}")
        producer.close()
        code = verdict(console, report.accepted, delivered, repeats, len(report.rejected), args.expect_rejected,
                       logs)
        code = gateway_results(console, client_batch, deadline) or code
        if hooks is not None:
            demo_webhooks.wait(hooks, deadline)
            code = demo_webhooks.verdict(console, hooks) or code
        if flower is not None:
            linger(console, flower)
        return code
    finally:
        for item in reversed(stack):
            item.stop()


def gateway_batch(console: Any, stack: list[Any], env: dict[str, str], settings: Settings, logs: Path) -> Any:
    """A tenant with a key, `batchline gateway`, and one client batch created with the official SDK."""
    import anthropic

    from batchline.keys import Keys
    from batchline.redis_client import connect
    from batchline.tenants import Tenant, TenantStore

    client = connect(settings.redis_url, settings.key_prefix)
    key = TenantStore(client, Keys(settings.key_prefix)).add(Tenant("via-gateway"))
    client.close()
    port = free_port()
    gateway = BatchlineProcess(["gateway", "--port", str(port)], env, str(logs / "gateway.log")).start()
    stack.append(gateway)
    wait_for_port(port, proc=gateway.proc)
    sdk = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=key, max_retries=2)
    batch = sdk.messages.batches.create(requests=[
        {"custom_id": f"gw-{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [
            {"role": "user", "content": f"Through the gateway: question {i}"}]}} for i in range(20)])
    console.print(f"Gateway on :{port}: tenant via-gateway created client batch {batch.id} of 20 requests "
                  "with anthropic.Anthropic(base_url=GATEWAY, api_key=TENANT_KEY)")
    return sdk, batch.id


def first_result_line(sdk: Any, batch: Any) -> dict[str, Any]:
    """The first line of an ended batch's results, streamed from its `results_url` and split on \\n
    ourselves: the SDK's own results decoder breaks on CRLF (docs/batches-api.md, Known traps)."""
    import httpx2

    from batchline.workers.lines import iter_lines
    from batchline.workers.results_location import results_location

    url = results_location(str(sdk.base_url), batch.id, batch.results_url, False)
    resp = sdk.get(url, cast_to=httpx2.Response, stream=True, options={"headers": {"Accept": "application/binary"}})
    try:
        line: dict[str, Any] = json.loads(next(iter_lines(resp.iter_bytes(64 * 1024))))
        return line
    finally:
        resp.close()


def gateway_results(console: Any, client_batch: Any, deadline: float) -> int:
    sdk, batch_id = client_batch
    batch = sdk.messages.batches.retrieve(batch_id)
    while batch.processing_status != "ended" and time.monotonic() < deadline:
        time.sleep(0.5)
        batch = sdk.messages.batches.retrieve(batch_id)
    if batch.processing_status != "ended":
        console.print(f"[red]Client batch {batch_id} still {batch.processing_status}")
        return 1
    first = first_result_line(sdk, batch)
    result = first["result"]
    text = result["message"]["content"][0]["text"] if result["type"] == "succeeded" else result["type"]
    console.print(f"Client batch {batch_id} through the gateway: ended, {batch.request_counts.succeeded} succeeded; "
                  f"results line {first['custom_id']} -> {text!r}")
    return 0


def linger(console: Any, flower: Any) -> None:
    """Flower's share of tasks that did work; in a terminal, Flower stays up until Enter."""
    from batchline import demo_flower

    console.print(demo_flower.report(flower), markup=False)
    if sys.stdin.isatty():
        console.print(f"Flower stays up at {flower.url}: press Enter to stop it and the demo", markup=False)
        with contextlib.suppress(EOFError, KeyboardInterrupt):
            input()


def verdict(console: Any, accepted: int, delivered: int, repeats: int, rejected: int, expect_rejected: int,
            logs: Path) -> int:
    """0 only when the run did what the demo promises."""
    problems = []
    if accepted == 0:
        problems.append("nothing was accepted")
    if delivered != accepted:
        problems.append(f"{accepted - delivered} of {accepted} accepted requests were not delivered (see {logs}/)")
    if repeats:
        problems.append(f"{repeats} deliveries repeated an earlier one")
    if rejected != expect_rejected:
        problems.append(f"{rejected} rejected where {expect_rejected} were expected")
    for problem in problems:
        console.print(f"[red]demo failed: {problem}[/red]")
    if not problems:
        console.print("[green]demo passed: every accepted request was delivered exactly once[/green]")
    return 1 if problems else 0


def summary(console: Any, producer: Producer, streams: list[str], settings: Settings) -> tuple[Counter[str], int]:
    from rich.table import Table

    from batchline.reports import cost_rows

    outcomes, repeats = delivered_outcomes(producer.redis, streams)
    example = None
    for stream in streams:
        for f in stream_entries(producer.redis, stream, count=50):
            if f["outcome"] == "succeeded":
                example = f
                break
        if example:
            break
    table = Table(title="batchline demo: summary")
    table.add_column("what")
    table.add_column("value")
    table.add_row("batches created", str(producer.redis.zcard(producer.keys.batches)))
    for outcome, count in sorted(outcomes.items()):
        table.add_row(f"outcome {outcome}", str(count))
    table.add_row("delivered (sum of outcomes)", str(sum(outcomes.values())))
    rows = cost_rows(producer.redis, producer.keys)
    spent, standard = sum(r.batch_usd for r in rows), sum(r.standard_usd for r in rows)
    table.add_row("cost (batch prices)", f"${spent:.4f}, vs ${standard:.4f} at standard prices")
    table.add_row("results in S3", f"s3://{settings.s3_bucket}/{settings.s3_prefix}/results/<tenant>/<custom_id>.json")
    table.add_row("raw files in S3", f"s3://{settings.s3_bucket}/{settings.s3_prefix}/batches/<batch_id>/results.jsonl")
    table.add_row("reply streams", ", ".join(streams))
    console.print(table)
    if example:
        result = json.loads(example["result"])
        console.print(f"One result: {example['tenant']}/{example['custom_id']} -> "
                      f"{result['message']['content'][0]['text']!r} (usage {result['message']['usage']})")
        console.print(f"Its status: {json.dumps(producer.status(example['custom_id'], tenant=example['tenant']))}")
    return outcomes, repeats


if __name__ == "__main__":
    sys.exit(run(argparse.ArgumentParser().parse_args([])))
