"""The one clock batchline reads (milliseconds since the epoch); tests may replace `now_ms`."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int | str | None) -> str | None:
    """RFC 3339 UTC with milliseconds, for humans and S3 objects."""
    if ms in (None, ""):
        return None
    ms = int(ms)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
