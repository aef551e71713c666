"""`batchline worker`: start a real Celery worker consuming the queues of one role (or all)."""

from __future__ import annotations

import argparse
import os

from batchline.workers.app import QUEUES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", choices=[*QUEUES, "all"], default="all",
                        help="which queues to consume (default all)")
    parser.add_argument("--name", default=None,
                        help="Celery node name (default ROLE-PID@%%h); `batchline health --node` takes the same")
    parser.add_argument("--concurrency", "-c", type=int, default=None, help="pool processes (default: cores)")
    parser.add_argument("--pool", default="prefork", help="Celery pool (default prefork)")
    parser.add_argument("--loglevel", default="INFO")


def worker_argv(args: argparse.Namespace) -> list[str]:
    queues = list(QUEUES.values()) if args.role == "all" else [QUEUES[args.role]]
    name = args.name or f"{args.role}-{os.getpid()}@%h"
    argv = ["worker", "-Q", ",".join(queues), "-n", name, "-E",
            f"--loglevel={args.loglevel}", f"--pool={args.pool}", "--without-mingle", "--without-gossip"]
    if args.concurrency:
        argv.append(f"--concurrency={args.concurrency}")
    return argv


def run(args: argparse.Namespace) -> int:
    from batchline.config.settings import Settings
    from batchline.costs import PriceTable
    from batchline.workers.celery_app import app

    PriceTable.load(Settings.from_env().prices_file)  # a bad BATCHLINE_PRICES_FILE fails now, not at a delivery

    app.worker_main(worker_argv(args))
    return 0
