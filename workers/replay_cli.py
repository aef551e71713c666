"""`batchline replay --tenant T [--batch ID] [--since DATE] [--until DATE] [--custom-id ID] --to TARGET
[--dry-run]`: send stored results from S3 again, to any reply target. Exit 0 when every matched result
was sent (or, with --dry-run, counted), 1 when some failed, 2 on bad arguments."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", required=True, help="whose stored results")
    parser.add_argument("--batch", default=None, help="only this batch's (batchline's blb_... or the provider's id)")
    parser.add_argument("--since", default=None, help="delivered at or after: YYYY-MM-DD (UTC) or an ISO 8601 time")
    parser.add_argument(
        "--until", default=None, help="delivered before: an ISO 8601 time, or YYYY-MM-DD (that whole day included)"
    )
    parser.add_argument("--custom-id", default=None, help="only this request")
    parser.add_argument(
        "--to",
        required=True,
        metavar="TARGET",
        help="a reply target: https://..., sqs:QUEUE, redis-stream:NAME, celery:TASK[@QUEUE]",
    )
    parser.add_argument("--dry-run", action="store_true", help="count what would be sent; send nothing")


def run(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from batchline.config.settings import Settings
    from batchline.errors import InvalidRequest
    from batchline.requests import check_id, check_reply_to
    from batchline.webhooks import WebhookPolicy
    from batchline.workers.context import Context
    from batchline.workers.replay import Filters, parse_time, replay

    settings = Settings.from_env()
    try:
        if not settings.s3_bucket:
            raise InvalidRequest("BATCHLINE_S3_BUCKET", "is not set: there are no stored results to replay")
        check_id("tenant", args.tenant)
        if args.custom_id is not None:
            check_id("custom_id", args.custom_id)
        target = check_reply_to(args.to, settings.key_prefix, settings.reply_stream_prefix, WebhookPolicy.of(settings))
        f = Filters(
            args.tenant,
            args.batch,
            parse_time("since", args.since) if args.since else None,
            parse_time("until", args.until, end_of_day=True) if args.until else None,
            args.custom_id,
        )
    except InvalidRequest as exc:
        print(f"batchline replay: {exc}", file=sys.stderr)
        return 2
    app = None
    if target.kind == "celery":
        from batchline.workers.app import create_app

        app = create_app(settings)
    ctx = Context(settings, app)
    if target.kind == "redis-stream" and (
        ctx.redis.sismember(ctx.keys.reply_queues, target.name) or ctx.redis.exists(f"_kombu.binding.{target.name}")
    ):
        print(f"batchline replay: --to: redis-stream:{target.name}: the key is a Celery queue", file=sys.stderr)
        return 2
    with Progress(transient=False, disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("replaying" if not args.dry_run else "counting", total=None)
        report = replay(
            ctx,
            f,
            target,
            dry_run=args.dry_run,
            celery_send=ctx.reply_sender,
            on_total=lambda n: progress.update(task, total=n),
            on_progress=lambda n: progress.advance(task, n),
        )
    verb = "would send" if args.dry_run else "sent"
    print(
        f"replay {report.replay_id}: looked at {report.listed}, matched {report.matched}, {verb} "
        f"{report.matched if args.dry_run else report.sent}, failed {len(report.failed)}"
    )
    for cid, error in list(report.failed.items())[:50]:
        print(f"  {cid}: {error}")
    return 1 if report.failed else 0
