"""`batchline cancel CUSTOM_ID --tenant T` or `batchline cancel --batch ID`."""

from __future__ import annotations

import argparse

from batchline.config.settings import Settings
from batchline.producers.producer import Producer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("custom_id", nargs="?", help="the request to cancel")
    parser.add_argument("--tenant", default=None, help="default: BATCHLINE_DEFAULT_TENANT")
    parser.add_argument("--batch", default=None, help="cancel every request of this batch (ours or the provider's id)")


def run(args: argparse.Namespace) -> int:
    if bool(args.custom_id) == bool(args.batch):
        print("give either CUSTOM_ID or --batch ID")
        return 2
    producer = Producer.from_settings(Settings.from_env())
    try:
        if args.batch:
            counts = producer.cancel_batch(args.batch)
            print(" ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
            return 0
        code = producer.cancel(args.custom_id, tenant=args.tenant)
        print({"removed": "removed from the queue", "requested": "cancel requested; it will be reported canceled",
               "final": "already settled; nothing to cancel", "unknown": "unknown request"}[code])
        return 1 if code == "unknown" else 0
    finally:
        producer.close()
