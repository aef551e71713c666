"""A Redis Cluster of three primaries on loopback, as real redis-server processes (tests, chaos rows):
the smallest cluster whose slots are spread over several nodes, as a managed cluster endpoint's are."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import redis

from batchline.local_services import RedisServer, free_port
from batchline.redis_cluster import key_slot, slot_owner

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
    """`masters` redis-servers with `--cluster-enabled yes`, every slot assigned, no replicas; `url` is
    the BATCHLINE_REDIS_URL that names them."""

    def __init__(self, masters: int = 3) -> None:
        self.dir = tempfile.mkdtemp(prefix="batchline-cluster-")
        options = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
        self.nodes = [
            RedisServer(port=node_port(), directory=f"{self.dir}/node{i}", extra=options) for i in range(masters)
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
                    "0",
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
        share = SLOTS // len(self.nodes)
        for i, n in enumerate(self.nodes):
            last = SLOTS - 1 if i == len(self.nodes) - 1 else (i + 1) * share - 1
            self.client(n.port).execute_command("CLUSTER ADDSLOTS", *range(i * share, last + 1))  # type: ignore[no-untyped-call]
        for n in self.nodes[1:]:
            self.client(n.port).execute_command("CLUSTER MEET", "127.0.0.1", self.nodes[0].port)  # type: ignore[no-untyped-call]

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=5)

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every node says cluster_state:ok and knows every other node."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos: list[Any] = [self.client(n.port).execute_command("CLUSTER INFO") for n in self.nodes]  # type: ignore[no-untyped-call]
            if all(
                i.get("cluster_state") == "ok" and int(i.get("cluster_known_nodes", 0)) == len(self.nodes)
                for i in infos
            ):  # (redis-py parses CLUSTER INFO into a dict)
                return
            time.sleep(0.1)
        raise TimeoutError(f"the local cluster was not ok after {timeout}s")

    def owner_port(self, key_prefix: str) -> int:
        """The port of the node that serves the slot of `key_prefix` (as Settings holds it, `{bl}`)."""
        return slot_owner([("127.0.0.1", n.port) for n in self.nodes], key_slot(key_prefix))[1]

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()
