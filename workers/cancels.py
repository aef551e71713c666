"""Requests canceled by their caller while their batch was still being claimed or created.

When such a batch is released (nothing was created), each canceled request ends in exactly one
delivery, `canceled`, through the same fan-out as any outcome (deliver.lua: reply target, S3 object,
counters, record TTL), before `release.lua` returns the others to the queue; `release.lua` refuses
while one is left, so a cancel that lands in between is settled on the next pass.
"""

from __future__ import annotations

from batchline.redis_client import texts
from batchline.workers.context import Context
from batchline.workers.results import Fanout

CANCELED_LINE = {"type": "canceled"}


def settle_canceled(ctx: Context, bid: str) -> int:
    """Deliver `canceled` to the requests of claimed batch `bid` whose caller canceled them."""
    from batchline.workers.app import celery_sender

    k = ctx.keys
    rids = texts(ctx.redis.lrange(k.batch_members(bid), 0, -1))
    pipe = ctx.redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hmget(k.request(rid), "s", "b", "x")
    canceled = [rid for rid, (state, owner, flag) in zip(rids, pipe.execute(), strict=True)
                if state == b"batched" and owner == bid.encode() and flag]
    if not canceled:
        return 0
    send = celery_sender(ctx.celery_app) if ctx.celery_app else None
    fan = Fanout(ctx, bid, {"state": "claimed"}, send, force_final=True)
    try:
        fan.settle([{"custom_id": rid, "result": CANCELED_LINE} for rid in canceled])
    finally:
        fan.close()
    return fan.report.delivered
