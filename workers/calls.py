"""Read calls (list, retrieve) retried inside one round: a 429/529/5xx or a dropped connection costs
a short, bounded wait (the provider's `retry-after` honoured up to a cap), not the round's work.

Only reads go through here: a create is never retried (a retried create can pay twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anthropic

from batchline import log
from batchline.workers.provider import Kind, classify

logger = log.get("batchline.calls")
T = TypeVar("T")
RETRYABLE = frozenset({Kind.RETRY, Kind.AMBIGUOUS})  # a read changes nothing: a 5xx on it is plain retryable


@dataclass(frozen=True, slots=True)
class ReadRetry:
    """How a read is retried: `tries` in all, waits doubling from `base_seconds`, each at most
    `cap_seconds` (a longer `retry-after` gives up the round instead of holding the worker)."""

    tries: int = 3
    base_seconds: float = 0.5
    cap_seconds: float = 5.0

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before try `attempt + 1` (attempt counts from 1), or None to give up."""
        if attempt >= self.tries:
            return None
        wait = retry_after if retry_after is not None else self.base_seconds * 2 ** (attempt - 1)
        return wait if wait <= self.cap_seconds else None


def read(
    call: Callable[[], T],
    policy: ReadRetry,
    on_call: Callable[[], None],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`call()`, retried per `policy` on retryable faults; `on_call` counts each API call made.
    Raises the last error when retrying cannot help or the tries are spent."""
    attempt = 0
    while True:
        attempt += 1
        on_call()
        try:
            return call()
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            c = classify(exc)
            wait = policy.delay(attempt, c.retry_after) if c.kind in RETRYABLE else None
            if wait is None:
                raise
            logger.info("call.retrying", call=what, status=c.status, attempt=attempt, wait_seconds=wait)
            sleep(wait)
