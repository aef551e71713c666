"""`batchline gateway`: serve the gateway with uvicorn; `run_in_thread` for tests and benchmarks.

TLS is the ingress's job (deploy/); the gateway speaks plain HTTP behind it.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from types import TracebackType

import uvicorn

from batchline import log
from batchline.config.settings import Settings

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


class GatewayHandle:
    """A gateway serving in a daemon thread on a free port; a context manager that stops it."""

    def __init__(self, settings: Settings, log_level: str = "critical") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        host, port = self._sock.getsockname()[:2]
        self.base_url = f"http://{host}:{port}"
        self._server = uvicorn.Server(_config(settings, log_level))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="batchline-gateway", daemon=True
        )

    def start(self, timeout: float = 10.0) -> GatewayHandle:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> GatewayHandle:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def run_in_thread(settings: Settings, log_level: str = "critical") -> GatewayHandle:
    return GatewayHandle(settings, log_level).start()
