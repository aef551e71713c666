"""Redis connections (one pool per process) and the pure helpers that decode what comes back."""

from __future__ import annotations

import redis


def connect(url: str) -> redis.Redis:
    """A client for the data side. Bytes in, bytes out: the hot paths decode only what they use."""
    return redis.Redis.from_url(url, health_check_interval=30, socket_keepalive=True)


def text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def text_map(raw: dict) -> dict[str, str]:  # type: ignore[type-arg]
    return {text(k): text(v) for k, v in raw.items()}  # type: ignore[misc]


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
