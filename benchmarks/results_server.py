"""A tiny stand-in for the two endpoints a result worker calls: retrieve (ended) and results.

Serves a prebuilt JSONL file from disk, in 64 KiB chunks, so the memory benchmark can stream a
~400 MB results file that the emulator cannot produce (its replies are ~20 characters long).
Run: python -m benchmarks.results_server PORT FILE
"""

from __future__ import annotations

import json
import os
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RETRIEVE = re.compile(r"^/v1/messages/batches/([A-Za-z0-9_-]+)$")
RESULTS = re.compile(r"^/v1/messages/batches/([A-Za-z0-9_-]+)/results$")


def make_handler(path: str, port: int) -> type[BaseHTTPRequestHandler]:
    size = os.path.getsize(path)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            url = self.path.split("?", 1)[0]
            if m := RESULTS.match(url):
                self.send_response(200)
                self.send_header("Content-Type", "application/x-jsonl")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                with open(path, "rb") as f:
                    while block := f.read(64 * 1024):
                        self.wfile.write(block)
                return
            if m := RETRIEVE.match(url):
                bid = m.group(1)
                body = json.dumps(
                    {
                        "id": bid,
                        "type": "message_batch",
                        "processing_status": "ended",
                        "request_counts": {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0},
                        "ended_at": "2026-01-01T00:00:00Z",
                        "created_at": "2026-01-01T00:00:00Z",
                        "expires_at": "2026-01-02T00:00:00Z",
                        "archived_at": None,
                        "cancel_initiated_at": None,
                        "results_url": f"http://127.0.0.1:{port}/v1/messages/batches/{bid}/results",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    ThreadingHTTPServer(("127.0.0.1", port), make_handler(path, port)).serve_forever()


if __name__ == "__main__":
    main()
