"""`batchline submit FILE.jsonl`: submit a file of requests in Anthropic's batch-file shape.

Each line is {"custom_id": ..., "params": {...}}, optionally with reply_to, tenant, metadata, betas,
deadline or deadline_seconds.
`--dry-run` checks every line as intake would and estimates the input cost, storing nothing.
A bad line is reported with its line number and reason; the good lines are stored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

from batchline.config.settings import Settings
from batchline.costs import BYTES_PER_TOKEN, InputEstimate, PriceTable
from batchline.errors import Backpressure, InvalidRequest, RetryableError
from batchline.producers.jsonl import parse_line
from batchline.producers.producer import Producer, Rejection, SubmitReport

#: Exit codes: 0 all stored, 1 some lines rejected, 2 Redis unreachable or refusing auth (batchline.cli),
#: 3 admission control refused the rest of the file, or the object store of large params is unreachable
#: (submit it again later: stored lines are duplicates).
EXIT_BACKPRESSURE = 3


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


class ByteCount:
    """Bytes of the input consumed so far: the progress of a file being iterated (no `tell()`, which a
    text file refuses while it is iterated, and which standard input does not have)."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0


def read_lines(
    stream: Iterable[bytes | str], line_numbers: list[int], bad: list[Rejection], count: ByteCount | None = None
) -> Iterator[dict[str, Any]]:
    """Parsed objects of a JSONL stream (bytes or text lines); malformed lines go to `bad` with their
    line number and the rule they broke, and reading goes on to the end."""
    for number, raw in enumerate(stream, start=1):
        if count is not None:
            count.bytes += len(raw)
            count.lines = number
        if not raw.strip():
            continue
        try:
            item = parse_line(raw)
        except InvalidRequest as exc:
            bad.append(Rejection(number, None, exc.field, exc.rule))
            continue
        line_numbers.append(number)
        yield item


def submit_file(
    producer: Producer,
    stream: Iterable[bytes | str],
    tenant: str | None,
    reply_to: str | None,
    progress: Callable[[ByteCount], None] | None = None,
) -> tuple[SubmitReport, list[Rejection]]:
    """Submit a JSONL stream. Returns the report with rejections renumbered to file lines.
    `progress` is called after each stored chunk with how much of the input has been read. When
    admission control refused a line, `report.backpressure` says which limit, with `.index` the file
    line it stopped at (nothing from there on was stored; the earlier lines were)."""
    numbers: list[int] = []
    bad: list[Rejection] = []
    count = ByteCount()
    on_chunk = None if progress is None else (lambda _n: progress(count))
    try:
        report = producer.submit_many(
            read_lines(stream, numbers, bad, count), tenant=tenant, reply_to=reply_to, on_progress=on_chunk
        )
    except Backpressure as exc:
        assert isinstance(exc.report, SubmitReport)
        report = exc.report
        exc.index = numbers[exc.index or 0]
        bad = [r for r in bad if r.index < exc.index]
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
    stream: BinaryIO = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
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
    producer.redis.ping()  # Redis unreachable or refusing auth: one clear line and exit 2 (cli.main), before reading
    from_stdin = args.file == "-"
    stream: BinaryIO = sys.stdin.buffer if from_stdin else open(args.file, "rb")  # noqa: SIM115 - bytes: each line decoded on its own
    try:
        if args.no_progress:
            report, rejected = submit_file(producer, stream, args.tenant, args.reply_to)
        else:
            from rich.console import Console
            from rich.progress import Progress

            total = None if from_stdin else os.path.getsize(args.file)
            # On stderr, so that the report on stdout stays clean for scripts.
            with Progress(console=Console(stderr=True), transient=False) as bar:
                task = bar.add_task("submitting", total=total)

                def advance(count: ByteCount) -> None:
                    bar.update(task, completed=count.bytes, description=f"submitting ({count.lines} lines)")

                report, rejected = submit_file(producer, stream, args.tenant, args.reply_to, progress=advance)
                read = bar.tasks[0].completed if total is None else total  # stdin: what was read is the total
                bar.update(task, total=read, completed=read)
    except RetryableError as exc:  # the object store of large params is unreachable: one line, exit 3
        print(f"batchline submit: {exc}; submit again later (lines already stored come back as duplicates)",
              file=sys.stderr)
        return EXIT_BACKPRESSURE
    finally:
        if not from_stdin:
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
