"""Redis connections (one pool per process) and the pure helpers that decode what comes back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis
from redis.sentinel import Sentinel

from batchline import redis_cluster, redis_url
from batchline.keys import cluster_prefix


def connect(url: str, key_prefix: str = "bl") -> redis.Redis:
    """A client for the data side. Bytes in, bytes out: the hot paths decode only what they use.
    A sentinel URL (`batchline/redis_url.py`) gives a client of the current primary, found again
    through the sentinels on every new connection (after a failover, the next command reconnects).
    A cluster URL gives a client of the node owning the slot of `key_prefix`'s hash tag (as Settings
    holds it: `{bl}`), found again from the seeds on every new connection (`batchline/redis_cluster.py`)."""
    target = redis_url.parse(url)
    if target is None:
        return redis.Redis.from_url(url, health_check_interval=30, socket_keepalive=True)
    if isinstance(target, redis_url.Cluster):
        slot = redis_cluster.key_slot(cluster_prefix(key_prefix))  # idempotent: '{bl}' stays '{bl}'
        return redis_cluster.client(target.seeds, slot, target.tls,
                                    health_check_interval=30, socket_keepalive=True, **target.client_kwargs())
    sentinels = Sentinel(list(target.hosts), sentinel_kwargs=target.sentinel_kwargs(),  # type: ignore[no-untyped-call]
                         **target.client_kwargs())
    client: redis.Redis = sentinels.master_for(  # type: ignore[no-untyped-call]
        target.master, health_check_interval=30, socket_keepalive=True, **target.client_kwargs())
    return client


def text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def texts(values: Iterable[Any]) -> list[str]:
    """Decode a reply that is a list of names (LRANGE, ZRANGE, SMEMBERS on a bytes client)."""
    return [_str(v) for v in values]


def text_map(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in raw.items()}


def stream_entries(client: redis.Redis, stream: str, count: int | None = None) -> list[dict[str, str]]:
    """The entries of a stream (XRANGE from the start), each as a decoded field map."""
    entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(stream, count=count)  # type: ignore[assignment]
    return [text_map(fields) for _, fields in entries]


def unreachable(exc: BaseException) -> str | None:
    """One clear line when `exc` means Redis cannot be reached or refused our credentials, else None.
    (redis-py's messages name host and port, never the password.)"""
    if isinstance(exc, redis.AuthenticationError) or (
        isinstance(exc, redis.ResponseError) and str(exc).startswith(("NOAUTH", "WRONGPASS"))
    ):
        return f"Redis refused authentication ({exc}); check the password in BATCHLINE_REDIS_URL"
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return f"cannot reach Redis: {exc}"
    return None
