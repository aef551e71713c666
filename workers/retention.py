"""Bounded keys: what batchline writes without a TTL of its own is trimmed here, once per sweep.

- the batches index (`bl:batches`) and the provider index (`bl:provider`): a batch created more than
  the record TTL ago that is settled (delivered or released) leaves both; a released batch's record
  (which has no TTL, nothing was delivered) is deleted with it. A delivered batch's record keeps its
  own TTL, set when it was delivered.
- per-day cost hashes older than `BATCHLINE_COST_DAYS_KEPT` days are rolled into one hash per month.

Records (TTL after delivery), leases and locks (TTLs), pending/open/ended (drain to empty), the
undeliverable index (trimmed by the watchdog) and reply streams (`BATCHLINE_REPLY_STREAM_MAXLEN`)
are bounded where they are written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from batchline import log
from batchline.redis_client import text, texts
from batchline.workers.context import Context

logger = log.get("batchline.retention")

#: Batches looked at per sweep: a backlog is worked off over several sweeps, each one short.
BATCHES_PER_SWEEP = 1000


@dataclass
class RetentionReport:
    batches_trimmed: int = 0
    days_rolled: int = 0


def trim(ctx: Context, now: int) -> RetentionReport:
    report = RetentionReport()
    report.batches_trimmed = trim_batches(ctx, now)
    report.days_rolled = roll_cost_days(ctx, now)
    if report.batches_trimmed or report.days_rolled:
        logger.info("retention.trimmed", batches=report.batches_trimmed, cost_days=report.days_rolled)
    return report


def settled_old_batches(ctx: Context, now: int) -> list[tuple[str, str | None, str | None]]:
    """(batch id, state, provider id) of batches created more than the record TTL ago and settled
    (delivered, released, or gone), at most `BATCHES_PER_SWEEP` looked at."""
    k, ttl_ms = ctx.keys, ctx.settings.record_ttl_seconds * 1000
    old = texts(ctx.redis.zrangebyscore(k.batches, "-inf", now - ttl_ms, start=0, num=BATCHES_PER_SWEEP))
    if not old:
        return []
    pipe = ctx.redis.pipeline(transaction=False)
    for bid in old:
        pipe.hmget(k.batch(bid), "state", "provider_id")
    settled = []
    for bid, (state, pid) in zip(old, pipe.execute(), strict=True):
        if text(state) in (None, "delivered", "released"):  # still in flight (a stuck batch is the watchdog's): kept
            settled.append((bid, text(state), text(pid)))
    return settled


def trim_batches(ctx: Context, now: int) -> int:
    k = ctx.keys
    settled = settled_old_batches(ctx, now)
    if not settled:
        return 0
    pipe = ctx.redis.pipeline(transaction=True)
    for bid, state, pid in settled:
        pipe.zrem(k.batches, bid)
        if pid:
            pipe.hdel(k.provider_index, pid)
        if state == "released":
            pipe.delete(k.batch(bid), k.batch_members(bid))
    pipe.execute()
    return len(settled)


def month_of(day: str) -> str:
    return day[:7]  # YYYY-MM-DD -> YYYY-MM


def roll_cost_days(ctx: Context, now: int) -> int:
    """Per-day cost hashes older than `cost_days_kept` days are added into their month's hash."""
    k = ctx.keys
    days = days_to_roll(ctx, now)
    for day in days:
        fields = ctx.redis.hgetall(k.cost_day(day))
        pipe = ctx.redis.pipeline(transaction=True)
        for name, value in fields.items():
            pipe.hincrby(k.cost_day(month_of(day)), name, int(value))
        pipe.sadd(k.cost_months, month_of(day))
        pipe.delete(k.cost_day(day))
        pipe.srem(k.cost_days, day)
        pipe.execute()
    return len(days)


def days_to_roll(ctx: Context, now: int) -> list[str]:
    """The days whose cost hash is older than `cost_days_kept` days, oldest first."""
    cutoff = time.strftime("%Y-%m-%d", time.gmtime(now / 1000 - ctx.settings.cost_days_kept * 86400))
    return sorted(d for d in texts(ctx.redis.smembers(ctx.keys.cost_days)) if d < cutoff)
