"""The sweeper: every step that holds work has a lease, and this returns it when its holder is gone.

- a claim whose lease ran out before the intent: its requests go back to pending;
- an intent (`creating`) whose lease ran out (its holder is gone, or its create answered a 5xx or a
  timeout): reconcile with the provider's batch list, adopt the batch its result lines prove ours,
  or release the requests when the whole window holds nothing of ours;
- an ended batch that no result worker finished: handed off again;
- requests canceled while queued: their one `canceled` delivery (workers/cancels.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchline import log
from batchline.clock import now_ms
from batchline.redis_client import text, text_map, texts
from batchline.workers import retention
from batchline.workers.aggregator import release
from batchline.workers.cancels import settle_queued_cancels
from batchline.workers.context import Context
from batchline.workers.reconciler import Action, reconcile_decision

logger = log.get("batchline.sweeper")


@dataclass
class SweepReport:
    released: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    handed_off: list[str] = field(default_factory=list)


def reconcile(ctx: Context, bid: str, report: SweepReport) -> None:
    """An intent whose create's outcome is unknown (its answer was a 5xx or a timeout, or its holder
    is gone): adopt the batch whose result lines prove it ours, release when the whole window was
    listed and nothing there is ours, else wait for the next sweep (workers/reconcile.py)."""
    k = ctx.keys
    batch = text_map(ctx.redis.hgetall(k.batch(bid)))
    if batch.get("state") != "creating":
        ctx.redis.zrem(k.leases, bid)
        return
    decision = reconcile_decision(ctx, bid, batch)
    if decision.action is Action.ADOPT:
        assert decision.provider_id is not None
        if ctx.scripts.submitted(
            keys=[k.leases, k.open, k.provider_index, k.batch(bid), k.batch_members(bid)],
            args=[k.request(""), bid, decision.provider_id, now_ms(), 1],
        ):
            logger.warning("batch.adopted", batch_id=bid, provider_batch_id=decision.provider_id, requests=batch["n"])
            report.adopted.append(bid)
    elif decision.action is Action.RELEASE:
        if release(ctx, bid, decision.reason):
            logger.warning("batch.released", batch_id=bid, reason=decision.reason)
            report.released.append(bid)
    else:
        logger.info("reconcile.waiting", batch_id=bid, reason=decision.reason)


def watchdogs(ctx: Context, now: int) -> dict[str, str]:
    """Batches in progress too long, results not delivered as the provider's 29-day end nears, and
    requests whose reply target refused them.
    Alerts are rewritten each sweep (shown by `batchline status`) and logged."""
    k, s = ctx.keys, ctx.settings
    alerts: dict[str, str] = {}
    stuck: list[tuple[bytes, float]] = ctx.redis.zrangebyscore(  # type: ignore[assignment]
        k.open, "-inf", now - s.stuck_batch_seconds * 1000, withscores=True
    )
    for raw, opened_at in stuck:
        hours = (now - opened_at) / 3_600_000
        alerts[f"stuck:{raw.decode()}"] = f"batch in progress for {hours:.1f} h"
    alerts.update(text_map(ctx.redis.hgetall(k.standing_alerts)))  # e.g. results unavailable: kept a week
    for bid in texts(ctx.redis.zrange(k.ended, 0, -1)):
        submitted = text(ctx.redis.hget(k.batch(bid), "submitted_at"))
        if submitted and now - int(submitted) > s.results_warn_age_seconds * 1000:
            days = (now - int(submitted)) / 86_400_000
            alerts[f"expiring:{bid}"] = f"results not delivered, {days:.1f} days after create (limit 29)"
    # undeliverable requests expire with their records; the index forgets them with the same TTL
    ctx.redis.zremrangebyscore(k.undeliverable, "-inf", now - s.record_ttl_seconds * 1000)
    undeliverable = ctx.redis.zcard(k.undeliverable)
    if undeliverable:
        alerts["undeliverable"] = (f"{undeliverable} requests whose reply target refused them "
                                   "(batchline status CUSTOM_ID shows why; fix the target, then batchline redeliver)")
    pipe = ctx.redis.pipeline()
    pipe.delete(k.alerts)
    if alerts:
        fields: dict[Any, Any] = dict(alerts)  # redis-py's Mapping key type is invariant
        pipe.hset(k.alerts, mapping=fields)
    pipe.execute()
    for key, message in alerts.items():
        logger.warning("watchdog.alert", alert=key, message=message)
    return alerts


def sweep(ctx: Context, hand_off: Callable[[str], None]) -> SweepReport:
    k, now = ctx.keys, now_ms()
    report = SweepReport()
    settle_queued_cancels(ctx)
    for bid in texts(ctx.redis.zrangebyscore(k.leases, "-inf", now)):
        state = text(ctx.redis.hget(k.batch(bid), "state")) or ""
        if state == "claimed":
            if release(ctx, bid, "claim_lease_expired"):
                logger.warning("batch.released", batch_id=bid, reason="claim_lease_expired")
                report.released.append(bid)
        elif state == "creating":
            reconcile(ctx, bid, report)
        else:
            ctx.redis.zrem(k.leases, bid)
    watchdogs(ctx, now)
    retention.trim(ctx, now)
    # Hand an ended batch off again only when no collector holds it and the last hand-off is older than
    # a collect lease: a busy results queue must not fill up with copies of the same task.
    stale = now - int(max(ctx.settings.sweep_interval_seconds, ctx.settings.collect_lease_seconds) * 1000)
    for bid in texts(ctx.redis.zrangebyscore(k.ended, "-inf", stale)):
        if not ctx.redis.exists(k.collect_lock(bid)):
            ctx.redis.zadd(k.ended, {bid: now})
            hand_off(bid)
            report.handed_off.append(bid)
    return report
