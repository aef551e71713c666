"""A primary, its replicas and three sentinels on loopback, as real redis-server processes (tests,
chaos rows, benchmarks): the smallest deployment that fails over the way a production Sentinel does."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from batchline.local_services import ChildServer, RedisServer, TLSFiles, free_port, redis_server_binary, wait_for_port
from batchline.replication import replication

MASTER = "batchline"



def wait_in_sync(primary: redis.Redis, replicas: int, timeout: float = 20.0) -> None:
    """Until `replicas` replicas are online with `primary` (what `batchline status` counts as in sync)."""
    deadline = time.monotonic() + timeout
    while replication(primary).get("in_sync", 0) < replicas:
        if time.monotonic() > deadline:
            raise TimeoutError(f"replicas not in sync with the primary after {timeout}s")
        time.sleep(0.1)


class SentinelNode(ChildServer):
    def __init__(self, directory: str, primary_port: int, down_after_ms: int, password: str = "",
                 sentinel_password: str = "", tls: TLSFiles | None = None) -> None:
        self.port = free_port()
        self.dir = directory
        self.conf = Path(directory) / "sentinel.conf"
        auth = f"sentinel auth-pass {MASTER} {password}\n" if password else ""
        own = f"requirepass {sentinel_password}\n" if sentinel_password else ""
        args = tls.server_args(self.port) if tls else ["--port", str(self.port)]
        ports = "".join(f"{name.removeprefix('--')} {value}\n"
                        for name, value in zip(args[::2], args[1::2], strict=True))
        self.conf.write_text(
            f"{ports}bind 127.0.0.1\ndir {directory}\nlogfile {directory}/sentinel.log\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n{auth}{own}"
            f"sentinel down-after-milliseconds {MASTER} {down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} 10000\nsentinel parallel-syncs {MASTER} 1\n")

    def start(self) -> SentinelNode:
        self.proc = subprocess.Popen([redis_server_binary(), str(self.conf), "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, proc=self.proc)
        return self


class SentinelGroup:
    """`primary`, `replicas` and three `sentinels`; `url` is the BATCHLINE_REDIS_URL that names them."""

    def __init__(self, replicas: int = 1, down_after_ms: int = 1000, password: str = "",
                 sentinel_password: str = "", tls: TLSFiles | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="batchline-sentinel-")
        self.password, self.sentinel_password, self.tls = password, sentinel_password, tls
        auth = ["--requirepass", password, "--masterauth", password] if password else []
        self.primary = RedisServer(directory=f"{self.dir}/primary", extra=auth, tls=tls)
        self.replicas = [RedisServer(directory=f"{self.dir}/replica{i}", tls=tls,
                                     extra=[*auth, "--replicaof", "127.0.0.1", str(self.primary.port)])
                         for i in range(replicas)]
        self.sentinels: list[SentinelNode] = []
        self.down_after_ms = down_after_ms

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        query = [f"sentinel_password={quote(self.sentinel_password, safe='')}"] if self.sentinel_password else []
        query += [f"ssl_ca_certs={quote(self.tls.ca)}"] if self.tls else []
        scheme = "rediss+sentinel" if self.tls else "redis+sentinel"
        return f"{scheme}://{auth}{hosts}/{MASTER}/0" + (f"?{'&'.join(query)}" if query else "")

    def _tls(self) -> dict[str, Any]:
        return self.tls.client_kwargs() if self.tls else {}

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password or None, socket_timeout=2, **self._tls())

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def start(self) -> SentinelGroup:
        self.primary.start()
        for r in self.replicas:
            r.start()
        self.wait_synced()
        for i in range(3):
            d = Path(self.dir) / f"sentinel{i}"
            d.mkdir()
            self.sentinels.append(SentinelNode(str(d), self.primary.port, self.down_after_ms, self.password,
                                               self.sentinel_password, self.tls).start())
        self.wait_primary(self.primary.port)
        return self

    def wait_synced(self, timeout: float = 20.0) -> None:
        wait_in_sync(self.client(self.primary.port), len(self.replicas), timeout)

    def current_primary_port(self) -> int | None:
        for s in self.sentinels:
            try:
                sentinel = redis.Redis(port=s.port, password=self.sentinel_password or None, socket_timeout=1,
                                       **self._tls())
                addr: Any = sentinel.sentinel_get_master_addr_by_name(MASTER)
                return int(addr[1])
            except (redis.RedisError, TypeError):
                continue
        return None

    def wait_primary(self, port: int | None = None, timeout: float = 30.0) -> int:
        """The primary's port once the sentinels agree on one (`port`, or any other than the old)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.current_primary_port()
            if now is not None and (now == port if port is not None else now != self.primary.port):
                return now
            time.sleep(0.1)
        raise TimeoutError(f"sentinels named no {'primary ' + str(port) if port else 'new primary'} in {timeout}s")

    def stop(self) -> None:
        for node in [*self.sentinels, *self.servers]:
            node.stop()
