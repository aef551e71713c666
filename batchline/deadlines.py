"""Per-request deadlines: parsed and checked at intake, and the path a deadline request takes (pure).

A request may carry `deadline` (an RFC 3339 time with an offset) or `deadline_seconds` (from its
submission), never both. Before packing, `route` decides whether it can wait for a batch or must go
real-time now; after packing, `hedge_due` says when a batch still running is too late for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from batchline.errors import InvalidRequest


class Path(StrEnum):
    """How a request was (or is being) answered."""

    BATCH = "batch"  # by its batch only
    REALTIME = "realtime"  # sent at once through the Messages API, never packed
    HEDGED = "hedged"  # packed, then also sent real-time when its batch ran late; the first answer won


def parse(deadline: Any, deadline_seconds: Any, now_ms: int, min_seconds: float) -> int:
    """The deadline in ms since the epoch (0: none), or `InvalidRequest` naming the field and rule."""
    if deadline is None and deadline_seconds is None:
        return 0
    if deadline is not None and deadline_seconds is not None:
        raise InvalidRequest("deadline", "give either deadline or deadline_seconds, not both")
    if deadline is not None:
        field, at = "deadline", _rfc3339(deadline)
    else:
        field = "deadline_seconds"
        if isinstance(deadline_seconds, bool) or not isinstance(deadline_seconds, int | float):
            raise InvalidRequest(field, f"must be a number of seconds, got {type(deadline_seconds).__name__}")
        if not math.isfinite(deadline_seconds) or deadline_seconds > 366 * 86400:
            raise InvalidRequest(field, "must be a finite number of seconds, at most a year")
        at = now_ms + int(deadline_seconds * 1000)
    if at <= now_ms:
        raise InvalidRequest(field, "is in the past (a deadline must be later than the submission)")
    if at - now_ms < min_seconds * 1000:
        raise InvalidRequest(
            field,
            f"is {(at - now_ms) / 1000:.1f} s away: a deadline must be at least "
            f"{min_seconds:g} s after the submission (BATCHLINE_MIN_DEADLINE_SECONDS)",
        )
    return at


def _rfc3339(value: Any) -> int:
    if not isinstance(value, str):
        raise InvalidRequest("deadline", f"must be an RFC 3339 time as a string, got {type(value).__name__}")
    text = value.strip().upper()  # RFC 3339 allows a lower-case t and z
    try:
        parsed = datetime.fromisoformat(text) if 10 < len(text) <= 40 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise InvalidRequest("deadline", f"{value[:60]!r} must be an RFC 3339 time, e.g. 2026-12-08T06:00:00Z")
    if parsed.tzinfo is None:
        raise InvalidRequest("deadline", f"{value[:60]!r} needs a UTC offset (Z or +HH:MM), as RFC 3339 requires")
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Route:
    """The decision for one deadline request before packing."""

    path: Path
    reason: str


def route(deadline_ms: int, now_ms: int, turnaround_s: float, from_history: bool) -> Route:
    """Real-time when the deadline is nearer than the expected batch turnaround, else batch."""
    left = (deadline_ms - now_ms) / 1000
    source = "p95 of recent batches" if from_history else "BATCHLINE_BATCH_TURNAROUND_SECONDS"
    if left < turnaround_s:
        return Route(
            Path.REALTIME,
            f"deadline in {left:.0f} s, nearer than the expected batch turnaround {turnaround_s:.0f} s ({source})",
        )
    return Route(
        Path.BATCH, f"deadline in {left:.0f} s, after the expected batch turnaround {turnaround_s:.0f} s ({source})"
    )


def hedge_due(earliest_deadline_ms: int, now_ms: int, margin_s: float) -> bool:
    """A batch still running this close to its earliest deadline sends its deadline requests real-time."""
    return earliest_deadline_ms > 0 and now_ms >= earliest_deadline_ms - margin_s * 1000


def p95(samples: list[float]) -> float:
    """The 95th percentile (nearest rank) of turnaround samples; 0.0 for none."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]
