"""A Redis Cluster of three primaries on loopback, as real redis-server processes (tests, chaos rows):
the smallest cluster whose slots are spread over several nodes, as a managed cluster endpoint's are."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import redis

from batchline.local_services import RedisServer, free_port
from batchline.redis_cluster import key_slot, owner_in
from batchline.replication import replication

SLOTS = 16384


def node_port() -> int:
    """A free port whose cluster bus port (port + 10000, which `redis-cli --cluster create` assumes) is free too."""
    while True:
        port = free_port()
        if port + 10000 <= 65535:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port + 10000)) != 0:
                    return port


class LocalCluster:
    """`masters` redis-servers with `--cluster-enabled yes`, every slot assigned, each with `replicas`
    replicas (a primary that fails is replaced by its replica after the node timeout, 2 s here); `url` is
    the BATCHLINE_REDIS_URL that names them all."""

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        self.dir = tempfile.mkdtemp(prefix="batchline-cluster-")
        self.masters, self.replicas = masters, replicas
        options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
        self.nodes = [
            RedisServer(port=node_port(), directory=f"{self.dir}/node{i}", extra=options)
            for i in range(masters * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> LocalCluster:
        for n in self.nodes:
            n.start()
        if shutil.which("redis-cli"):
            subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{n.port}" for n in self.nodes),
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=60,
            )
        else:
            self._create_by_hand()
        self.wait_ok()
        return self

    def _create_by_hand(self) -> None:
        """What `redis-cli --cluster create` does: split the slots, then introduce the nodes."""
        primaries = self.nodes[: self.masters]
        share = SLOTS // len(primaries)
        for i, n in enumerate(primaries):
            last = SLOTS - 1 if i == len(primaries) - 1 else (i + 1) * share - 1
            self.client(n.port).execute_command("CLUSTER ADDSLOTS", *range(i * share, last + 1))  # type: ignore[no-untyped-call]
        for n in self.nodes[1:]:
            self.client(n.port).execute_command("CLUSTER MEET", "127.0.0.1", self.nodes[0].port)  # type: ignore[no-untyped-call]
        if self.replicas:
            self.wait_ok(known_only=True)
            ids = [self.client(n.port).execute_command("CLUSTER MYID") for n in primaries]  # type: ignore[no-untyped-call]
            for i, n in enumerate(self.nodes[self.masters :]):
                self.client(n.port).execute_command("CLUSTER REPLICATE", ids[i % self.masters])  # type: ignore[no-untyped-call]

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5)

    def wait_ok(self, timeout: float = 30.0, known_only: bool = False) -> None:
        """Until every node says cluster_state:ok and knows every other node, and every primary has its
        replicas in sync."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos: list[Any] = [self.client(n.port).execute_command("CLUSTER INFO") for n in self.nodes]  # type: ignore[no-untyped-call]
            known = all(int(i.get("cluster_known_nodes", 0)) == len(self.nodes) for i in infos)
            if known and known_only:
                return
            # (redis-py parses CLUSTER INFO into a dict)
            if known and all(i.get("cluster_state") == "ok" for i in infos) and self._replicas_in_sync():
                return
            time.sleep(0.1)
        raise TimeoutError(f"the local cluster was not ok after {timeout}s")

    def _replicas_in_sync(self) -> bool:
        if not self.replicas:
            return True
        rep = [replication(self.client(n.port)) for n in self.nodes]
        primaries = [r for r in rep if r.get("role") == "master"]
        return len(primaries) == self.masters and all(r["in_sync"] == self.replicas for r in primaries)

    def owner_port(self, key_prefix: str) -> int:
        """The port of the node that serves the slot of `key_prefix` (as Settings holds it, `{bl}`), as the
        first live node says."""
        for n in self.nodes:
            if n.proc is None or n.proc.poll() is not None:
                continue
            ranges: Any = self.client(n.port).execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            owner, _ = owner_in(ranges, key_slot(key_prefix), "127.0.0.1")
            if owner is not None:
                return owner[1]
        raise RuntimeError("no live node names an owner of the slot")

    def wait_owner_change(self, key_prefix: str, old: int, timeout: float = 30.0) -> int:
        """The port of the new owner of the slot once the live nodes name one other than `old` (a failover)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                now = self.owner_port(key_prefix)
                if now != old:
                    return now
            time.sleep(0.1)
        raise TimeoutError(f"no replica took over the slot of {key_prefix} in {timeout}s")

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
