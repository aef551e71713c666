"""Cluster mode: a redis-py client bound to the one node that owns batchline's slot.

Every key batchline uses (and, through kombu's `global_keyprefix`, every key of its Celery broker)
carries one hash tag (`batchline/keys.py`), so all of them live in one slot, on one primary. A client of
that primary is all batchline needs, and it keeps what a cluster-aware client loses: Lua scripts over
many keys, MULTI/EXEC, `WAIT` on the connection that wrote (BATCHLINE_REDIS_MIN_REPLICAS), INFO.

Each new connection asks the seed nodes (and the nodes they named last time) which node owns the slot
(`CLUSTER SLOTS`). A reply that says the slot is elsewhere or not served now (MOVED after a failover
or a resharding, ASK and TRYAGAIN while the slot moves, CLUSTERDOWN while a failover runs) was not
executed: the connection is dropped and the command sent again on a new one (a few times, backing off),
which goes where the MOVED pointed or asks the seeds again; past that it is raised as a
`ConnectionError`, which batchline's callers already treat as "Redis unreachable, try again".
Nothing follows an ASK to the importing node: while the slot moves, calls fail retryably.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.crc import key_slot as _key_slot
from redis.retry import Retry

#: Replies meaning "not executed here": the slot is served elsewhere, moving, or not served right now
NOT_HERE = (redis.exceptions.AskError, redis.exceptions.TryAgainError, redis.exceptions.ClusterDownError)
_known: dict[tuple[tuple[str, int], ...], list[tuple[str, int]]] = {}  # seeds -> every node last seen
_moved: dict[tuple[tuple[tuple[str, int], ...], int], tuple[str, int]] = {}  # (seeds, slot) -> where MOVED said
_lock = threading.Lock()


def key_slot(key: str) -> int:
    """The cluster slot of `key` (of its hash tag, when it has one)."""
    return int(_key_slot(key.encode()))


def slot_owner(seeds: Sequence[tuple[str, int]], slot: int, **kwargs: Any) -> tuple[str, int]:
    """(host, port) of the primary serving `slot`: where the last MOVED pointed, else what the first seed
    (or node seen before) that answers says. (While a slot changes hands the nodes' maps may disagree for
    a moment; a MOVED is the answer of the node that gave the slot away.)"""
    key = tuple(seeds)
    with _lock:
        moved = _moved.pop((key, slot), None)
        candidates = list(dict.fromkeys([*seeds, *_known.get(key, [])]))
    if moved is not None:
        return moved
    last: Exception | None = None
    for host, port in candidates:
        try:
            node = redis.Redis(
                host=host,
                port=port,
                socket_timeout=2.0,
                socket_connect_timeout=2.0,
                retry=Retry(NoBackoff(), 0),
                **kwargs,
            )  # a dead seed: on to the next at once
            try:
                ranges: Any = node.execute_command("CLUSTER SLOTS")  # type: ignore[no-untyped-call]
            finally:
                node.close()
        except redis.RedisError as exc:
            last = exc
            continue
        owner, nodes = owner_in(ranges, slot, host)
        with _lock:
            _known[key] = nodes
        if owner is not None:
            return owner
        last = redis.ConnectionError(f"Redis Cluster: no node serves slot {slot} (cluster not ready?)")
    raise redis.ConnectionError(f"Redis Cluster: cannot learn who serves slot {slot}: {last}")


def owner_in(ranges: Any, slot: int, asked: str) -> tuple[tuple[str, int] | None, list[tuple[str, int]]]:
    """The owner of `slot` in a CLUSTER SLOTS reply (redis-py gives a dict of (start, end) -> nodes, or the
    raw list), and every node it names. A node that does not know its own address answers ''."""
    rows: list[tuple[int, int, Any]] = []
    if isinstance(ranges, dict):
        rows = [(int(a), int(b), v.get("primary")) for (a, b), v in ranges.items()]
    else:
        rows = [(int(r[0]), int(r[1]), r[2]) for r in ranges]
    owner, nodes = None, []
    for start, end, primary in rows:
        host = primary[0].decode() if isinstance(primary[0], bytes) else str(primary[0])
        addr = (host or asked, int(primary[1]))
        nodes.append(addr)
        if start <= slot <= end:
            owner = addr
    return owner, nodes


class SlotMoved(redis.ConnectionError):
    """The node did not run the command: the slot is served elsewhere or not at all right now."""


#: A command refused with MOVED & co. was not run: safe to send again, on a new connection. (Nothing else
#: is retried here: a connection lost after a command was sent may have run it.)
RETRY = Retry(ExponentialBackoff(cap=1.0, base=0.05), 5, supported_errors=(SlotMoved,))


class SlotOwnerMixin:
    """A redis-py connection to the current owner of one slot; see the module's docstring."""

    host: str
    port: int

    def __init__(self, *, cluster_seeds: Sequence[Sequence[Any]], cluster_slot: int, **kwargs: Any) -> None:
        self.cluster_seeds = [(str(h), int(p)) for h, p in cluster_seeds]
        self.cluster_slot = int(cluster_slot)
        self._seed_kwargs = {k: kwargs[k] for k in ("username", "password") if kwargs.get(k)}
        if kwargs.get("ssl") or type(self).__name__.endswith("SSLConnection"):
            self._seed_kwargs["ssl"] = True
        host, port = self.cluster_seeds[0]
        super().__init__(host=host, port=port, **kwargs)  # type: ignore[call-arg]

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if not getattr(self, "_sock", None):
            self.host, self.port = slot_owner(self.cluster_seeds, self.cluster_slot, **self._seed_kwargs)
        super().connect_check_health(check_health, retry_socket_connect)  # type: ignore[misc]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except NOT_HERE as exc:
            self.disconnect()  # type: ignore[attr-defined]
            if isinstance(exc, redis.exceptions.MovedError):  # the next connection goes where it points
                with _lock:
                    _moved[(tuple(self.cluster_seeds), self.cluster_slot)] = (exc.host or self.host, int(exc.port))
            raise SlotMoved(
                f"Redis Cluster: slot {self.cluster_slot} not served by "
                f"{self.host}:{self.port} now ({str(exc)[:80]}); reconnecting"
            ) from exc


class SlotOwnerConnection(SlotOwnerMixin, redis.Connection):
    pass


class SlotOwnerSSLConnection(SlotOwnerMixin, redis.SSLConnection):
    pass


def client(seeds: Sequence[tuple[str, int]], slot: int, tls: bool = False, **kwargs: Any) -> redis.Redis:
    """A client of the node that owns `slot` (bytes in, bytes out, like `redis_client.connect`)."""
    pool = redis.ConnectionPool(
        connection_class=SlotOwnerSSLConnection if tls else SlotOwnerConnection,
        cluster_seeds=list(seeds),
        cluster_slot=slot,
        retry=RETRY,
        **kwargs,
    )
    return redis.Redis(connection_pool=pool)
