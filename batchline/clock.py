"""Clocks, in milliseconds since the epoch.

Workers read time from their context's clock (`Context.clock`): Redis `TIME` by default, so every
lease and every time window is measured on one clock, the server's, whichever host compares it.
Tests hand the context a `FakeClock` and move it instead of sleeping through a lease.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis


class Clock(Protocol):
    def now_ms(self) -> int: ...


def now_ms() -> int:
    """This host's wall clock (the producer's intake time, read-only views)."""
    return time.time_ns() // 1_000_000


class RedisClock:
    """Redis server time (`TIME`): the clock of leases and windows."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def now_ms(self) -> int:
        seconds, micros = self._client.time()
        return int(seconds) * 1000 + int(micros) // 1000


class FakeClock:
    """A clock that moves only when told; starts at this host's time so it lines up with other parts."""

    def __init__(self, start_ms: int | None = None) -> None:
        self._now = now_ms() if start_ms is None else start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += int(seconds * 1000)


def iso(ms: int | str | None) -> str | None:
    """RFC 3339 UTC with milliseconds, for humans and S3 objects."""
    if ms in (None, ""):
        return None
    ms = int(ms)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
