"""`batchline submit FILE.jsonl`: submit a file of requests in Anthropic's batch-file shape.

Each line is {"custom_id": ..., "params": {...}}, optionally with reply_to, tenant, metadata.
A bad line is reported with its line number and reason; the good lines are stored.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from typing import Any

from batchline.config.settings import Settings
from batchline.errors import Backpressure, InvalidRequest
from batchline.producers.jsonl import parse_line
from batchline.producers.producer import Producer, Rejection, SubmitReport

#: Exit codes: 0 all stored, 1 some lines rejected, 2 Redis unreachable or refusing auth (batchline.cli),
#: 3 admission control refused the rest of the file (submit it again later: stored lines are duplicates).
EXIT_BACKPRESSURE = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="JSONL file, one request per line ('-' for standard input)")
    parser.add_argument("--tenant", default=None, help="tenant for lines without one (default: "
                        "BATCHLINE_DEFAULT_TENANT)")
    parser.add_argument("--reply-to", default=None, help="target for lines without one, e.g. "
                        "redis-stream:NAME or celery:TASK[@QUEUE]")
    parser.add_argument("--redis-url", default=None, help="default: BATCHLINE_REDIS_URL")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_lines(stream: Any, line_numbers: list[int], bad: list[Rejection]) -> Iterator[dict[str, Any]]:
    """Parsed objects of a JSONL stream (bytes or text lines); malformed lines go to `bad` with their
    line number and the rule they broke, and reading goes on to the end."""
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        try:
            item = parse_line(line)
        except InvalidRequest as exc:
            bad.append(Rejection(number, None, exc.field, exc.rule))
            continue
        line_numbers.append(number)
        yield item


def submit_file(producer: Producer, stream: Any, tenant: str | None, reply_to: str | None,
                progress: Any = None) -> tuple[SubmitReport, list[Rejection]]:
    """Submit a JSONL stream. Returns the report with rejections renumbered to file lines. When
    admission control refused a line, `report.backpressure` says which limit, with `.index` the file
    line it stopped at (nothing from there on was stored; the earlier lines were)."""
    numbers: list[int] = []
    bad: list[Rejection] = []
    try:
        report = producer.submit_many(read_lines(stream, numbers, bad), tenant=tenant, reply_to=reply_to,
                                      on_progress=progress)
    except Backpressure as exc:
        assert isinstance(exc.report, SubmitReport)
        report = exc.report
        exc.index = numbers[exc.index or 0]
        bad = [r for r in bad if r.index < exc.index]
    by_line = [Rejection(numbers[r.index], r.custom_id, r.field, r.reason) for r in report.rejected]
    return report, sorted(bad + by_line, key=lambda r: r.index)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.redis_url:
        settings = settings.replace(redis_url=args.redis_url)
    producer = Producer.from_settings(settings)
    producer.redis.ping()  # Redis unreachable or refusing auth: one clear line and exit 2 (cli.main), before reading
    # bytes: each line is decoded on its own, so invalid UTF-8 is that line's rejection, not the end
    stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
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
    if report.backpressure is not None:
        print(f"stopped at line {report.backpressure.index}, not stored from there on: {report.backpressure}")
        return EXIT_BACKPRESSURE
    return 1 if rejected else 0
