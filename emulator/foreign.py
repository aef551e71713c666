"""Another application in the same workspace: batches whose custom_ids are not the caller's.

Its ids look like anyone's (24 hex characters, seeded), so only a check against one's own records
tells them apart. Batches come on demand (control API) or from a generator that creates one batch of
exactly ``foreign_batch_requests`` requests every ``foreign_every_real_seconds``; the generator runs
lazily, on each API call, for every period that has passed (nothing can observe the workspace
between calls, so this is the same as a background thread, and it needs no thread to stop).
"""

from __future__ import annotations

import random
import threading
import time

from .intake import Analysis, analyze

PARAMS_TEXT = "another application's prompt"


def foreign_ids(seed: int, serial: int, n: int) -> list[str]:
    """``n`` distinct custom_ids of the ``serial``-th foreign batch (same seed, same ids)."""
    rng = random.Random(f"{seed}:foreign:{serial}")
    return [f"{rng.getrandbits(96):024x}" for _ in range(n)]


def foreign_analyses(n: int) -> list[Analysis]:
    """What the emulator keeps of ``n`` plain, valid requests."""
    one = analyze(
        {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": PARAMS_TEXT}]}
    )
    return [one] * n


class ForeignSchedule:
    """When the generator owes the workspace another batch (real seconds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: float | None = None

    def due(self, every: float, enabled: bool) -> int:
        """How many batches are due now; starts the schedule on the first call with ``enabled``."""
        now = time.monotonic()
        with self._lock:
            if not enabled:
                self._next = None
                return 0
            if self._next is None:
                self._next = now + every
                return 0
            count = 0
            while self._next <= now:
                count += 1
                self._next += every
            return count

    def reset(self) -> None:
        with self._lock:
            self._next = None
