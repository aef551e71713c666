"""A real webhook receiver for the demo, tests, benchmarks and chaos runs: a threaded HTTP server on loopback
that verifies every signature (`batchline.webhooks.verify`) and answers as told."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from batchline.webhooks import WebhookVerificationError, verify


@dataclass
class Received:
    webhook_id: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    status: int


@dataclass
class Receiver:
    """`answer(n)` gives the status of the n-th call (0-based) and an optional delay in seconds."""

    secret: str | dict[str, str] | None = None  # a dict: each tenant's (by the body's `tenant`)
    answer: Callable[[int], tuple[int, float]] = lambda n: (200, 0.0)
    calls: list[Received] = field(default_factory=list)
    bad_signatures: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    headers_out: dict[str, str] = field(default_factory=dict)
    port: int = 0  # 0: a free one

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            n = len(self.calls)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            status, delay = self.answer(n)
            body = json.loads(raw or b"null")
            if self.secret is not None:
                secret = self.secret if isinstance(self.secret, str) else self.secret.get(body.get("tenant"), "")
                try:
                    verify(secret, headers, raw)
                except WebhookVerificationError:
                    self.bad_signatures += 1
                    status = 400
            self.calls.append(Received(headers.get("webhook-id", ""), headers, body, time.monotonic(), status))
        if delay:
            time.sleep(delay)
        with self._lock:  # before the answer: the sender's next call may arrive as soon as it is read
            self.in_flight -= 1
        try:
            h.send_response(status)
            for k, v in self.headers_out.items():
                h.send_header(k, v)
            h.send_header("content-length", "0")
            h.end_headers()
        except OSError:
            pass  # the sender gave up (timeout)

    def delivered(self) -> dict[str, Received]:
        """custom_id -> its first 2xx call."""
        out: dict[str, Received] = {}
        for call in self.calls:
            if 200 <= call.status < 300:
                out.setdefault(call.body["custom_id"], call)
        return out

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
