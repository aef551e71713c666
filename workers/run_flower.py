"""`batchline flower`: Flower over the batchline app, with basic auth from FLOWER_BASIC_AUTH.

Tasks carry namespaced names (batchline.aggregator.pack, batchline.poller.poll, ...) and each role
has its own queue, so Flower shows aggregator, poller and result work apart. Workers send task
events (`-E` is on by default in `batchline worker`).
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=5555, help="port (default 5555)")
    parser.add_argument("--address", default="0.0.0.0", help="bind address (default 0.0.0.0)")
    parser.add_argument("--no-auth", action="store_true", help="allow running without FLOWER_BASIC_AUTH (local use)")


def flower_argv(args: argparse.Namespace) -> list[str]:
    # No --basic-auth on the command line (it would show in `ps`): Flower reads FLOWER_BASIC_AUTH itself.
    return ["flower", f"--port={args.port}", f"--address={args.address}"]


def run(args: argparse.Namespace) -> int:
    from batchline.config.settings import Settings

    settings = Settings.from_env()
    if not settings.flower_basic_auth and not args.no_auth:
        print("FLOWER_BASIC_AUTH is not set (user:password); set it, or pass --no-auth for local use")
        return 2
    from batchline.workers.celery_app import app

    app.start(flower_argv(args))
    return 0
