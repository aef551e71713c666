"""Delete params objects (batchline/objects.py) once no request that is not yet final refers to them.

intake.lua counts, per object key, the requests that refer to it; deliver.lua (where every request
becomes final) counts them down and, at zero, lists the key with the time. The sweeper deletes what
has been listed longer than `BATCHLINE_PARAMS_GC_GRACE_SECONDS`; a key referred to again meanwhile is
only taken off the list. An object left behind (a conflict's PUT, a crash between a PUT and intake)
expires by the lifecycle rule deploy/ sets on the params prefix.
"""

from __future__ import annotations

from batchline import log
from batchline.workers.context import Context

logger = log.get("batchline.params_gc")
BATCH = 1000  # keys per DeleteObjects call (S3's own maximum)


def due(ctx: Context, now: int) -> int:
    """How many params objects are due for deletion (beat's sweep check)."""
    return int(ctx.redis.zcount(ctx.keys.params_gc, "-inf", now - int(ctx.settings.params_gc_grace_seconds * 1000)))


def collect(ctx: Context, now: int) -> int:
    """Delete the params objects due; how many. A store fault is logged and stops this round: its keys
    go back on the list for the next sweep."""
    cutoff = now - int(ctx.settings.params_gc_grace_seconds * 1000)
    deleted = 0
    while keys := ctx.scripts.params_gc(cutoff, BATCH):
        if not ctx.settings.s3_bucket:
            return deleted
        try:
            ctx.s3.delete_objects(
                Bucket=ctx.settings.s3_bucket, Delete={"Objects": [{"Key": key} for key in keys], "Quiet": True}
            )
        except Exception as exc:  # the objects stay; the lifecycle rule expires them
            logger.warning(
                "params.delete_failed",
                store=f"s3://{ctx.settings.s3_bucket}",
                objects=len(keys),
                error=type(exc).__name__,
            )
            # back on the list for the next sweep (intake takes a key off again when it is referred to)
            ctx.redis.zadd(ctx.keys.params_gc, dict.fromkeys(keys, cutoff), nx=True)
            break
        deleted += len(keys)
    if deleted:
        logger.info("params.deleted", objects=deleted)
    return deleted
