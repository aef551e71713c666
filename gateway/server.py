"""`batchline gateway`: serve the gateway with uvicorn; `run_in_thread` for tests and benchmarks.

TLS is the ingress's job (deploy/); the gateway speaks plain HTTP behind it.
"""

from __future__ import annotations

import argparse

import uvicorn

from batchline import log
from batchline.config.settings import Settings
from batchline.threaded_server import ServerThread

from .app import build_app

#: slow clients: idle keep-alive connections are closed after this many seconds
KEEP_ALIVE_SECONDS = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Settings.from_env()
    parser.add_argument(
        "--host",
        default=d.gateway_host,
        help=f"address to listen on (default BATCHLINE_GATEWAY_HOST or 127.0.0.1: {d.gateway_host})",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=d.gateway_port,
        help=f"port (default BATCHLINE_GATEWAY_PORT or 8080: {d.gateway_port})",
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level")


def _config(settings: Settings, log_level: str, host: str = "127.0.0.1", port: int = 8080) -> uvicorn.Config:
    # access logs carry method, path and status only: never a header, so never a key
    return uvicorn.Config(
        build_app(settings),
        host=host,
        port=port,
        lifespan="off",
        log_level=log_level,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        proxy_headers=False,
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    log.configure(settings.log_level, settings.log_format)
    uvicorn.Server(_config(settings, args.log_level, host=args.host, port=args.port)).run()
    return 0


class GatewayHandle(ServerThread):
    """A gateway serving in a daemon thread on a free port; a context manager that stops it."""

    name = "batchline-gateway"

    def __init__(self, settings: Settings, log_level: str = "critical") -> None:
        super().__init__(_config(settings, log_level))


def run_in_thread(settings: Settings, log_level: str = "critical") -> GatewayHandle:
    return GatewayHandle(settings, log_level).start()
