"""`batchline status [CUSTOM_ID --tenant T]`: one request's state, or the pipeline's counts."""

from __future__ import annotations

import argparse
import json

from batchline.config.settings import Settings
from batchline.keys import Keys
from batchline.producers.producer import Producer
from batchline.redis_client import text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("custom_id", nargs="?", help="a request's custom_id (omit for the pipeline)")
    parser.add_argument("--tenant", default=None, help="default: BATCHLINE_DEFAULT_TENANT")


def pipeline_counts(producer: Producer) -> dict[str, object]:
    k: Keys = producer.keys
    r = producer.redis
    pending_bytes, in_flight = r.hmget(k.stats, "pending_bytes", "in_flight")
    return {
        "pending": r.llen(k.pending),
        "pending_bytes": int(text(pending_bytes) or 0),
        "in_flight": int(text(in_flight) or 0),
        "in_flight_limit": producer.settings.max_requests_in_flight,
        "batches": r.zcard(k.batches),
        "open_batches": r.zcard(k.open),
        "awaiting_delivery": r.zcard(k.ended),
        "leased": r.zcard(k.leases),
        "paused": {text(a): text(b) for a, b in r.hgetall(k.paused).items()} or False,
        "alerts": {text(a): text(b) for a, b in r.hgetall(k.alerts).items()},
    }


def run(args: argparse.Namespace) -> int:
    producer = Producer.from_settings(Settings.from_env())
    try:
        if args.custom_id:
            status = producer.status(args.custom_id, tenant=args.tenant)
            if status is None:
                print(f"unknown request: {args.custom_id!r}")
                return 1
            print(json.dumps(status, indent=2))
        else:
            print(json.dumps(pipeline_counts(producer), indent=2))
    finally:
        producer.close()
    return 0
