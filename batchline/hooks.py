"""Named crash points, enabled only by the test setting `BATCHLINE_TEST_CRASH_AT`.

`crash_point(ctx, "before_create")` SIGKILLs the current process the first time that point is
reached (once per Redis database, so the replacement process runs through).
"""

from __future__ import annotations

import os
import signal

import redis

POINTS = ("after_claim", "before_create", "after_create", "mid_stream", "mid_delivery")


def crash_point(crash_at: str | None, client: redis.Redis, prefix: str, name: str) -> None:
    if crash_at != name:
        return
    if client.set(f"{prefix}:crashed:{name}", "1", nx=True):
        os.kill(os.getpid(), signal.SIGKILL)
