"""`batchline redeliver [CUSTOM_ID --tenant T | --tenant T | --all]`: send undeliverable requests
again once their reply target is fixed. Exit 0 when every one was delivered, 1 when some still fail."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("custom_id", nargs="?", help="one request (with --tenant, or the default tenant)")
    parser.add_argument("--tenant", default=None, help="only this tenant's requests")
    parser.add_argument("--all", action="store_true", help="every undeliverable request")


def run(args: argparse.Namespace) -> int:
    from batchline.config.settings import Settings
    from batchline.workers.app import create_app
    from batchline.workers.context import Context
    from batchline.workers.sinks import celery_sender
    from batchline.workers.targets import redeliver, undeliverable_ids

    if not (args.custom_id or args.tenant or args.all):
        print("name a request (CUSTOM_ID [--tenant T]), a tenant (--tenant T), or pass --all")
        return 2
    settings = Settings.from_env()
    app = create_app(settings)
    ctx = Context(settings, app)
    report = redeliver(ctx, celery_sender(app), undeliverable_ids(ctx, args.tenant, args.custom_id))
    print(f"delivered: {report.delivered}  back in the outbox (webhook, SQS): {report.delivering}  "
          f"still undeliverable: {len(report.failed)}  gone: {report.gone}")
    for rid, error in list(report.failed.items())[:50]:
        print(f"  {rid}: {error}")
    return 1 if report.failed else 0
