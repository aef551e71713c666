"""The emulated clock: wall time at start, then real elapsed time times a speed-up factor."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    """Emulated epoch seconds; ``speed`` 3600 makes one real second an emulated hour.

    The speed can change at run time (the clock is rebased so time never jumps back), and
    tests can ``advance`` it by emulated seconds.
    """

    def __init__(self, speed: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._base_emulated = time.time()
        self._base_real = time.monotonic()
        self._speed = speed

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        """Current emulated time, epoch seconds."""
        with self._lock:
            return self._base_emulated + (time.monotonic() - self._base_real) * self._speed

    def set_speed(self, speed: float) -> None:
        """Change the speed from now on, keeping the current emulated time."""
        with self._lock:
            real = time.monotonic()
            self._base_emulated += (real - self._base_real) * self._speed
            self._base_real = real
            self._speed = speed

    def advance(self, seconds: float) -> None:
        """Jump forward by ``seconds`` emulated seconds."""
        with self._lock:
            self._base_emulated += seconds


def rfc3339(ts: float) -> str:
    """RFC 3339 with microseconds and ``Z``, as the API writes timestamps."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
