"""`batchline health --node NAME`: is this worker consuming? (for liveness probes)

A process check cannot see a worker that stays alive but stopped consuming after a broker
reconnect (celery #8030, #8384, #10205). This sends a ping task to the worker's own queue
(`worker_direct`) and waits for the worker to run it: exit 0 when it did, 1 when it did not in time.
"""

from __future__ import annotations

import argparse
import secrets
import socket
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", required=True, help="the worker's node name, e.g. results@%%h (%%h: this host)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for the worker (default 20)")


def expand(node: str) -> str:
    return node.replace("%h", socket.gethostname())


def run(args: argparse.Namespace) -> int:
    from celery.utils import worker_direct

    from batchline.workers.app import PING
    from batchline.workers.celery_app import app
    from batchline.workers.context import current

    node = expand(args.node)
    ctx = current(app.conf.batchline_settings, app)
    key = f"{ctx.keys.prefix}:health:{secrets.token_hex(8)}"
    try:
        ctx.redis.ping()
    except Exception as exc:  # any failure to reach Redis is "unhealthy"
        print(f"unhealthy: Redis unreachable ({type(exc).__name__})")
        return 1
    # A kombu Queue (its exchange routes to this one worker), which Celery takes; celery-types says str.
    app.send_task(PING, args=[key], queue=worker_direct(node), expires=args.timeout)  # type: ignore[arg-type]
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if ctx.redis.get(key):
            ctx.redis.delete(key)
            print(f"healthy: {node} consumed a ping")
            return 0
        time.sleep(0.2)
    print(f"unhealthy: {node} did not consume a ping within {args.timeout:.0f}s")
    return 1
