"""``batchline emulator``: the CLI (``add_arguments``, ``run``) and ``run_in_thread`` for tests."""

from __future__ import annotations

import argparse
import os
from typing import Any

import uvicorn

from batchline.threaded_server import ServerThread, bind_socket

from .app import build_app
from .config import EmulatorConfig
from .state import EmulatorState


class EmulatorHandle(ServerThread):
    """A running emulator in a daemon thread; a context manager that stops it on exit."""

    name = "batchline-emulator"

    def __init__(self, config: EmulatorConfig, log_level: str = "critical") -> None:
        self.state = EmulatorState(config)
        super().__init__(
            uvicorn.Config(build_app(self.state), lifespan="off", log_level=log_level), config.host, config.port
        )

    @property
    def config(self) -> EmulatorConfig:
        return self.state.config

    def books(self) -> dict[str, Any]:
        """The books: batches and requests created, double submissions, results, faults."""
        return self.state.books()

    def reset(self) -> None:
        """Forget every batch and zero the books."""
        self.state.reset()

    def set_faults(self, **changes: Any) -> EmulatorConfig:
        """Change settings at run time, e.g. ``set_faults(http_429_rate=1.0)``."""
        return self.state.set_faults(**changes)

    def advance(self, seconds: float) -> None:
        """Move the emulated clock forward by ``seconds``."""
        self.state.clock.advance(seconds)


def run_in_thread(config: EmulatorConfig | None = None, log_level: str = "critical") -> EmulatorHandle:
    """Start an emulator on ``config.host`` and a free port (unless ``config.port``) and return its handle."""
    return EmulatorHandle(config or EmulatorConfig(), log_level).start()


def _pair(text: str) -> tuple[str, float]:
    name, _, rate = text.partition("=")
    return name, float(rate)


def _processing(text: str) -> float | tuple[float, float]:
    if ":" in text or "," in text:
        lo, hi = text.replace(",", ":").split(":")
        return (float(lo), float(hi))
    return float(text)


def _env(name: str, default: str | None) -> str | None:
    return os.environ.get(f"BATCHLINE_EMULATOR_{name}", default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """CLI flags; each defaults from ``BATCHLINE_EMULATOR_<NAME>`` where noted."""
    d = EmulatorConfig()
    a = parser.add_argument
    a("--host", default=_env("HOST", d.host), help="bind address (env BATCHLINE_EMULATOR_HOST)")
    a(
        "--port",
        type=int,
        default=int(_env("PORT", "8765") or 8765),
        help="port, 0 for a free one (env BATCHLINE_EMULATOR_PORT; default 8765)",
    )
    a(
        "--processing-seconds",
        type=_processing,
        default=d.processing_seconds,
        help="emulated processing time per batch: SECONDS or LO:HI (seeded per batch)",
    )
    a("--cancel-seconds", type=float, default=d.cancel_seconds, help="emulated canceling time")
    a("--clock-speed", type=float, default=d.clock_speed, help="emulated seconds per real second")
    a("--seed", type=int, default=d.seed, help="seed of every random choice")
    a(
        "--error-rate",
        type=_pair,
        action="append",
        default=[],
        metavar="TYPE=RATE",
        help="share of requests ending errored with TYPE (repeatable)",
    )
    a("--expire-rate", type=float, default=d.expire_rate, help="share of requests ending expired")
    a("--http-429-rate", type=float, default=d.http_429_rate, help="share of API calls answered 429")
    a("--http-529-rate", type=float, default=d.http_529_rate, help="share of API calls answered 529")
    a("--http-500-rate", type=float, default=d.http_500_rate, help="share of API calls answered 500")
    a("--http-400-rate", type=float, default=d.http_400_rate, help="share of API calls answered 400 (whole call)")
    a("--retry-after", type=int, default=d.retry_after_seconds, help="retry-after of 429s, seconds")
    a("--fault-operations", default="", help="comma list of operations the rate faults hit (all)")
    a("--latency", type=float, default=d.latency_real_seconds, help="real seconds added to each answer")
    a(
        "--fresh-404-seconds",
        type=float,
        default=d.fresh_404_seconds,
        help="answer 404 on retrieve/results of a batch younger than this (emulated s)",
    )
    a("--fresh-404-real-time", action="store_true", help="count --fresh-404-seconds in real seconds")
    a("--results-cut-after", type=int, default=None, help="drop results connections after N lines")
    a("--rpm-limit", type=int, default=None, help="API calls per real minute before 429")
    a("--queue-limit", type=int, default=None, help="max requests in open batches before create 429s")
    a("--spend-limit-reached", action="store_true", help="answer every call with the spend-cap 429")
    a(
        "--create-lost-reply-rate",
        type=float,
        default=d.create_lost_reply_rate,
        help="share of creates that create the batch, then answer 500",
    )
    a("--results-404", action="store_true", help="answer 404 on the results of every batch")
    a("--list-page-max", type=int, default=None, help="list pages hold at most this many batches")
    a(
        "--results-url-mode",
        choices=("absolute", "relative", "unreachable"),
        default=d.results_url_mode,
        help="results_url: absolute (default), a relative reference, or on a host clients cannot reach",
    )
    a("--mount-path", default=d.mount_path, help="also serve the API under this path (e.g. /anthropic)")
    a(
        "--foreign-batch-requests",
        type=int,
        default=d.foreign_batch_requests,
        help="another application creates batches of this many requests (0: off)",
    )
    a(
        "--foreign-every",
        type=float,
        default=d.foreign_every_real_seconds,
        help="real seconds between the other application's batches",
    )
    a("--crlf", action="store_true", help="end results lines with CRLF")
    a("--max-body-bytes", type=int, default=d.max_body_bytes, help="create body limit (413 above)")
    a("--max-requests", type=int, default=d.max_requests, help="requests per batch limit")
    a("--log-level", default="info", help="uvicorn log level")


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The ``EmulatorConfig`` the CLI flags describe."""
    ops = tuple(op for op in args.fault_operations.split(",") if op)
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        processing_seconds=args.processing_seconds,
        cancel_seconds=args.cancel_seconds,
        clock_speed=args.clock_speed,
        seed=args.seed,
        error_rates=dict(args.error_rate),
        expire_rate=args.expire_rate,
        http_429_rate=args.http_429_rate,
        http_529_rate=args.http_529_rate,
        http_500_rate=args.http_500_rate,
        http_400_rate=args.http_400_rate,
        retry_after_seconds=args.retry_after,
        fault_operations=ops,
        latency_real_seconds=args.latency,
        fresh_404_seconds=args.fresh_404_seconds,
        fresh_404_real_time=args.fresh_404_real_time,
        results_cut_after=args.results_cut_after,
        rpm_limit=args.rpm_limit,
        queue_limit=args.queue_limit,
        spend_limit_reached=args.spend_limit_reached,
        create_lost_reply_rate=args.create_lost_reply_rate,
        results_404=args.results_404,
        list_page_max=args.list_page_max,
        results_url_mode=args.results_url_mode,
        mount_path=args.mount_path,
        foreign_batch_requests=args.foreign_batch_requests,
        foreign_every_real_seconds=args.foreign_every,
        crlf=args.crlf,
        max_body_bytes=args.max_body_bytes,
        max_requests=args.max_requests,
    )


def run(args: argparse.Namespace) -> int:
    """Serve in the foreground until interrupted; print the base URL once listening."""
    config = config_from_args(args)
    state = EmulatorState(config)
    sock = bind_socket(config.host, config.port)
    host, port = sock.getsockname()[:2]
    print(f"batchline emulator listening on http://{host}:{port}", flush=True)
    print(f"  export ANTHROPIC_BASE_URL=http://{host}:{port}", flush=True)
    server = uvicorn.Server(uvicorn.Config(build_app(state), lifespan="off", log_level=args.log_level))
    server.run(sockets=[sock])
    sock.close()
    return 0
