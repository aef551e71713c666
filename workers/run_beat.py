"""`batchline beat`: the single scheduler of pack, poll and sweep ticks. Every task it fires is
safe to run twice, so a second beat by mistake costs API calls, not correctness."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loglevel", default="INFO")


def run(args: argparse.Namespace) -> int:
    from batchline.workers.celery_app import app

    app.start(["beat", f"--loglevel={args.loglevel}"])
    return 0
