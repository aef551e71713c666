"""The sweeper: every step that holds work has a lease, and this returns it when its holder is gone.

- a claim whose lease ran out before the intent: its requests go back to pending;
- an intent (`creating`) whose lease ran out: reconcile with the provider's batch list, adopt the
  batch that was created, or release the requests when nothing was;
- an ended batch that no result worker finished: handed off again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import anthropic

from batchline import log
from batchline.clock import now_ms
from batchline.redis_client import text_map
from batchline.workers.aggregator import release
from batchline.workers.context import Context
from batchline.workers.provider import classify

logger = log.get("batchline.sweeper")
CLOCK_SLACK_MS = 120_000


@dataclass
class SweepReport:
    released: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    handed_off: list[str] = field(default_factory=list)


def reconcile(ctx: Context, bid: str, report: SweepReport) -> None:
    k = ctx.keys
    batch = text_map(ctx.redis.hgetall(k.batch(bid)))
    if batch.get("state") != "creating":
        ctx.redis.zrem(k.leases, bid)
        return
    n, intent_at = int(batch["n"]), int(batch["intent_at"])
    try:
        page = ctx.anthropic.messages.batches.list(limit=1000)
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        logger.warning("reconcile.list_failed", batch_id=bid, status=classify(exc).status)
        return
    candidates = []
    for b in page.data:
        created = int(b.created_at.timestamp() * 1000)
        counts = b.request_counts
        total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        if total == n and created >= intent_at - CLOCK_SLACK_MS and not ctx.redis.hexists(k.provider_index, b.id):
            candidates.append((created, b.id))
    if candidates:
        pid = min(candidates)[1]
        if ctx.scripts.submitted(
            keys=[k.leases, k.open, k.provider_index, k.batch(bid), k.batch_members(bid)],
            args=[k.request(""), bid, pid, now_ms(), 1],
        ):
            logger.warning("batch.adopted", batch_id=bid, provider_batch_id=pid, requests=n)
            report.adopted.append(bid)
        return
    if release(ctx, bid, "reconciled_not_created"):
        logger.warning("batch.released", batch_id=bid, reason="reconciled_not_created")
        report.released.append(bid)


def watchdogs(ctx: Context, now: int) -> dict[str, str]:
    """Batches in progress too long, and results not delivered as the provider's 29-day end nears.
    Alerts are rewritten each sweep (shown by `batchline status`) and logged."""
    k, s = ctx.keys, ctx.settings
    alerts: dict[str, str] = {}
    for raw, submitted in ctx.redis.zrangebyscore(k.open, "-inf", now - s.stuck_batch_seconds * 1000,
                                                  withscores=True):
        hours = (now - submitted) / 3_600_000
        alerts[f"stuck:{raw.decode()}"] = f"batch in progress for {hours:.1f} h"
    for raw in ctx.redis.zrange(k.ended, 0, -1):
        submitted = ctx.redis.hget(k.batch(raw.decode()), "submitted_at")
        if submitted and now - int(submitted) > s.results_warn_age_seconds * 1000:
            days = (now - int(submitted)) / 86_400_000
            alerts[f"expiring:{raw.decode()}"] = f"results not delivered, {days:.1f} days after create (limit 29)"
    pipe = ctx.redis.pipeline()
    pipe.delete(k.alerts)
    if alerts:
        pipe.hset(k.alerts, mapping=alerts)
    pipe.execute()
    for key, message in alerts.items():
        logger.warning("watchdog.alert", alert=key, message=message)
    return alerts


def sweep(ctx: Context, hand_off: Callable[[str], None]) -> SweepReport:
    k, now = ctx.keys, now_ms()
    report = SweepReport()
    for raw in ctx.redis.zrangebyscore(k.leases, "-inf", now):
        bid = raw.decode()
        state = (ctx.redis.hget(k.batch(bid), "state") or b"").decode()
        if state == "claimed":
            if release(ctx, bid, "claim_lease_expired"):
                logger.warning("batch.released", batch_id=bid, reason="claim_lease_expired")
                report.released.append(bid)
        elif state == "creating":
            reconcile(ctx, bid, report)
        else:
            ctx.redis.zrem(k.leases, bid)
    watchdogs(ctx, now)
    # Hand an ended batch off again only when no collector holds it and the last hand-off is older than
    # a collect lease: a busy results queue must not fill up with copies of the same task.
    stale = now - int(max(ctx.settings.sweep_interval_seconds, ctx.settings.collect_lease_seconds) * 1000)
    for raw in ctx.redis.zrangebyscore(k.ended, "-inf", stale):
        bid = raw.decode()
        if not ctx.redis.exists(k.collect_lock(bid)):
            ctx.redis.zadd(k.ended, {bid: now})
            hand_off(bid)
            report.handed_off.append(bid)
    return report
