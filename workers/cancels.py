"""Requests canceled by their caller before any provider batch held them: each ends in exactly one
delivery, `canceled`, through the same fan-out as any outcome (deliver.lua: reply target, S3 object,
counters, record TTL).

- canceled while queued: cancel.lua moves it to the cancel batch (`keys.CANCEL_BATCH`); each sweep
  delivers those (`settle_queued_cancels`);
- canceled while its batch was claimed or created, and that batch is released (nothing was created):
  delivered before `release.lua` returns the others to the queue; `release.lua` refuses while one is
  left, so a cancel that lands in between is settled on the next pass.
"""

from __future__ import annotations

from batchline.fields import B, R
from batchline.keys import CANCEL_BATCH
from batchline.redis_client import texts
from batchline.retry import RetryPolicy
from batchline.workers.context import Context
from batchline.workers.results import Fanout

CANCELED_LINE = {"type": "canceled"}


def settle_queued_cancels(ctx: Context, chunk: int = 1000) -> int:
    """Deliver the requests canceled while queued, a chunk at a time; returns how many."""
    k, done = ctx.keys, 0
    while True:
        rids = texts(ctx.redis.lrange(k.canceled_queue, 0, chunk - 1))
        if not rids:
            return done
        done += settle_canceled(ctx, CANCEL_BATCH, rids)
        ctx.redis.ltrim(k.canceled_queue, len(rids), -1)  # settled (or settled before a crash): drop them


def settle_canceled(ctx: Context, bid: str, rids: list[str] | None = None) -> int:
    """Deliver `canceled` to the requests of claimed batch `bid` (or `rids` of it) whose caller canceled them."""
    k = ctx.keys
    if rids is None:
        rids = texts(ctx.redis.lrange(k.batch_members(bid), 0, -1))
    pipe = ctx.redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hmget(k.request(rid), R.STATE, R.BATCH, R.CANCEL)
    canceled = [
        rid
        for rid, (state, owner, flag) in zip(rids, pipe.execute(), strict=True)
        if state == b"batched" and owner == bid.encode() and flag
    ]
    if not canceled:
        return 0
    fan = Fanout(ctx, bid, {B.STATE: "claimed"}, policy=RetryPolicy.final_only())
    try:
        fan.settle([{"custom_id": rid, "result": CANCELED_LINE} for rid in canceled])
    finally:
        fan.close()
    return fan.report.delivered + fan.report.handed  # a webhook or SQS target: sent from the outbox
