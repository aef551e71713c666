"""`batchline status [CUSTOM_ID --tenant T]`: one request's state and history, or the pipeline on
one screen (`--watch` refreshes it, `--json` prints it for scripts)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Any

from batchline.config.settings import Settings
from batchline.producers.producer import Producer
from batchline.replication import describe
from batchline.reports import Snapshot, snapshot


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("custom_id", nargs="?", help="a request's custom_id (omit for the pipeline)")
    parser.add_argument("--tenant", default=None, help="default: BATCHLINE_DEFAULT_TENANT")
    parser.add_argument("--watch", action="store_true", help="refresh the pipeline view every 2 s")
    parser.add_argument("--json", action="store_true", help="print the pipeline view as JSON")


def render(snap: Snapshot, limit: int, min_replicas: int = 0) -> Any:
    from rich.console import Group
    from rich.table import Table

    queue = Table(title="pipeline", show_header=False)
    for name, value in [
        ("pending", f"{snap.pending:,} requests, {snap.pending_bytes / 1e6:,.1f} MB"),
        ("oldest pending", f"{snap.oldest_pending_age_s:,.0f} s"),
        ("in flight", f"{snap.in_flight:,} of {limit:,}"),
        ("open batches", f"{snap.open_batches:,}"),
        ("awaiting delivery", f"{snap.awaiting_delivery:,} batches"),
        ("leases held", f"{snap.leased:,}"),
        ("outbox", f"{snap.outbox:,} delivering (webhook, SQS), {snap.outbox_due:,} due, the oldest due "
                   f"{snap.oldest_outbox_due_age_s:,.0f} s ago"),
        ("undeliverable", f"{snap.undeliverable:,} (batchline redeliver)"),
        ("submission", f"PAUSED since {snap.paused.get('since')}: {snap.paused.get('reason')} "
                       f"{snap.paused.get('message', '')}" if snap.paused else "running"),
        ("redis", describe(snap.redis, min_replicas)),
    ]:
        queue.add_row(name, value)
    tenants = Table(title="by tenant")
    for col in ("tenant", "waiting", "outstanding", "succeeded", "errored", "canceled", "expired"):
        tenants.add_column(col)
    delivered = snap.by("delivered")
    for tenant, outstanding in sorted(snap.outstanding_by_tenant().items()):
        waiting = snap.waiting_by_tenant.get(tenant, 0)
        tenants.add_row(tenant, f"{waiting:,}", f"{outstanding:,}", *(f"{delivered.get((tenant, o), 0):,}"
                                                      for o in ("succeeded", "errored", "canceled", "expired")))
    batches = Table(title="open batches (oldest 50)")
    for col in ("batch", "provider batch", "requests", "age", "expires in"):
        batches.add_column(col)
    for b in snap.open:
        batches.add_row(b["batch_id"], str(b["provider_batch_id"]) + (" (adopted)" if b["adopted"] else ""),
                        f"{b['requests']:,}", f"{b['age_s'] / 60:,.1f} min", f"{(86400 - b['age_s']) / 3600:,.1f} h")
    parts: list[Any] = [queue, tenants, batches]
    if snap.alerts:
        alerts = Table(title="watchdog alerts")
        alerts.add_column("alert")
        alerts.add_column("what")
        for key, message in sorted(snap.alerts.items()):
            alerts.add_row(key, message)
        parts.append(alerts)
    return Group(*parts)


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    producer = Producer.from_settings(settings)
    try:
        if args.custom_id:
            status = producer.status(args.custom_id, tenant=args.tenant)
            if status is None:
                print(f"unknown request: {args.custom_id!r}")
                return 1
            print(json.dumps(status, indent=2))
            return 0
        snap = snapshot(producer.redis, producer.keys, with_open=True)
        if args.json:
            print(json.dumps(dataclasses.asdict(snap), indent=2))
            return 0
        from rich.console import Console
        from rich.live import Live

        if not args.watch:
            Console(width=120).print(render(snap, settings.max_requests_in_flight, settings.redis_min_replicas))
            return 0
        limit, replicas = settings.max_requests_in_flight, settings.redis_min_replicas
        with Live(render(snap, limit, replicas), refresh_per_second=1) as live:
            while True:
                time.sleep(2)
                live.update(render(snapshot(producer.redis, producer.keys, with_open=True), limit, replicas))
    except KeyboardInterrupt:
        return 0
    finally:
        producer.close()
