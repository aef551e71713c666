"""`batchline submit FILE.jsonl`: submit a file of requests in Anthropic's batch-file shape.

Each line is {"custom_id": ..., "params": {...}}, optionally with reply_to, tenant, metadata, betas.
`--dry-run` checks every line as intake would and estimates the input cost, storing nothing.
A bad line is reported with its line number and reason; the good lines are stored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from batchline.config.settings import Settings
from batchline.costs import BYTES_PER_TOKEN, InputEstimate, PriceTable
from batchline.producers.producer import Producer, Rejection, SubmitReport


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="JSONL file, one request per line ('-' for standard input)")
    parser.add_argument("--tenant", default=None, help="tenant for lines without one (default: "
                        "BATCHLINE_DEFAULT_TENANT)")
    parser.add_argument("--reply-to", default=None, help="target for lines without one, e.g. "
                        "redis-stream:NAME or celery:TASK[@QUEUE]")
    parser.add_argument("--redis-url", default=None, help="default: BATCHLINE_REDIS_URL")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--dry-run", action="store_true", help="check every line as intake would and estimate "
                        "the input cost; store nothing")


def read_lines(stream: Any, line_numbers: list[int], bad: list[Rejection]) -> Iterator[dict[str, Any]]:
    """Parsed objects of a JSONL stream; malformed lines go to `bad` with their line number."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(Rejection(number, None, "line", f"invalid JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(item, dict):
            bad.append(Rejection(number, None, "line", "must be a JSON object"))
            continue
        line_numbers.append(number)
        yield item


def submit_file(producer: Producer, stream: Any, tenant: str | None, reply_to: str | None,
                progress: Any = None) -> tuple[SubmitReport, list[Rejection]]:
    """Submit a JSONL stream. Returns the report with rejections renumbered to file lines."""
    numbers: list[int] = []
    bad: list[Rejection] = []
    report = producer.submit_many(read_lines(stream, numbers, bad), tenant=tenant, reply_to=reply_to,
                                  on_progress=progress)
    by_line = [Rejection(numbers[r.index], r.custom_id, r.field, r.reason) for r in report.rejected]
    return report, sorted(bad + by_line, key=lambda r: r.index)


def check_file(producer: Producer, stream: Any, tenant: str | None, reply_to: str | None,
               prices: PriceTable) -> tuple[SubmitReport, list[Rejection], InputEstimate]:
    """`--dry-run`: what `submit_file` would do, storing nothing, and the input cost of what it would accept."""
    numbers: list[int] = []
    bad: list[Rejection] = []
    report, accepted = producer.check_many(read_lines(stream, numbers, bad), tenant=tenant, reply_to=reply_to)
    estimate = InputEstimate()
    for r in accepted:
        estimate.add(prices, str(json.loads(r.params_json).get("model")), len(r.params_json))
    by_line = [Rejection(numbers[r.index], r.custom_id, r.field, r.reason) for r in report.rejected]
    return report, sorted(bad + by_line, key=lambda r: r.index), estimate


def dry_run(args: argparse.Namespace, settings: Settings, producer: Producer) -> int:
    stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    try:
        report, rejected, est = check_file(producer, stream, args.tenant, args.reply_to,
                                           PriceTable.load(settings.prices_file))
    finally:
        stream.close()
        producer.close()
    print(f"dry run (nothing stored): would accept: {report.accepted}  duplicate: {report.duplicate}  "
          f"rejected: {len(rejected)}")
    print(f"estimated input cost: ${est.batch_micros / 1e6:,.4f} in a batch (${est.standard_micros / 1e6:,.4f} "
          f"at standard prices) for ~{est.tokens:,} input tokens (~{BYTES_PER_TOKEN} bytes of request per token; "
          "output and actual usage not included)")
    if est.unpriced:
        print("  unpriced models (not in the estimate): "
              + ", ".join(f"{m} ({n} requests)" for m, n in sorted(est.unpriced.items())))
    for r in rejected[:50]:
        print(f"  line {r.index}: {r.custom_id or '-'}: {r.field}: {r.reason}")
    if len(rejected) > 50:
        print(f"  ... and {len(rejected) - 50} more")
    return 1 if rejected else 0


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.redis_url:
        settings = settings.replace(redis_url=args.redis_url)
    producer = Producer.from_settings(settings)
    if args.dry_run:
        return dry_run(args, settings, producer)
    stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    try:
        if args.no_progress or args.file == "-":
            report, rejected = submit_file(producer, stream, args.tenant, args.reply_to)
        else:
            from rich.progress import Progress

            with Progress(transient=False) as bar:
                task = bar.add_task("submitting", total=os.path.getsize(args.file))
                report, rejected = submit_file(
                    producer, stream, args.tenant, args.reply_to,
                    progress=lambda _n: bar.update(task, completed=stream.tell()),
                )
                bar.update(task, completed=os.path.getsize(args.file))
    finally:
        stream.close()
        producer.close()
    print(f"accepted: {report.accepted}  duplicate: {report.duplicate}  rejected: {len(rejected)}")
    for r in rejected[:50]:
        print(f"  line {r.index}: {r.custom_id or '-'}: {r.field}: {r.reason}")
    if len(rejected) > 50:
        print(f"  ... and {len(rejected) - 50} more")
    return 1 if rejected else 0
