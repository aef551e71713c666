"""The sweeper: every step that holds work has a lease (`batchline.leases`), and this returns the
work when its holder is gone. What it does is one table of (batch state, lease state) -> action:

- a claim whose lease ran out before the intent: its requests go back to pending;
- an intent (`creating`) whose lease ran out (its holder is gone, or its create answered a 5xx or a
  timeout): reconcile with the provider's batch list, adopt the batch its result lines prove ours,
  or release the requests when the whole window holds nothing of ours;
- an ended batch whose hand-off or collect lease ran out (no result worker finished it): handed off again;
- anything else in the lease index (saved, released, delivered): dropped from the index;
- and, outside the table, requests canceled while queued: their one `canceled` delivery (workers/cancels.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from batchline import log
from batchline.fields import B
from batchline.leases import HANDOFF, LeaseState, handoff_until, lease_state, new_owner
from batchline.redis_client import text, text_map, texts
from batchline.states import BatchState
from batchline.workers import params_gc, retention
from batchline.workers.aggregator import release
from batchline.workers.cancels import settle_queued_cancels
from batchline.workers.context import Context
from batchline.workers.reconciler import Action as Verdict
from batchline.workers.reconciler import reconcile_decision

logger = log.get("batchline.sweeper")


class Action(StrEnum):
    WAIT = "wait"
    RELEASE = "release"
    RECONCILE = "reconcile"
    HAND_OFF = "hand_off"
    FORGET = "forget"


_GONE = {LeaseState.EXPIRED, LeaseState.NONE}
_ON_EXPIRY: dict[str, Action] = {BatchState.CLAIMED: Action.RELEASE, BatchState.CREATING: Action.RECONCILE,
              BatchState.ENDED: Action.HAND_OFF}


def action(state: str, lease: LeaseState) -> Action:
    """What the sweeper does with a batch in `state` whose lease is `lease`."""
    on_expiry = _ON_EXPIRY.get(state)
    if on_expiry is None:
        return Action.FORGET
    return on_expiry if lease in _GONE else Action.WAIT


@dataclass
class SweepReport:
    released: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    handed_off: list[str] = field(default_factory=list)
    canceled: int = 0  # requests canceled while queued, given their `canceled` delivery
    alerts: int | None = None  # how many alerts stand, when they changed (None: unchanged)
    trimmed: int = 0  # batches trimmed from the indexes and cost days rolled into months
    params_deleted: int = 0  # params objects deleted, no request referring to them any more

    def summary(self) -> dict[str, Any]:
        """What this sweep did, as its Celery task's result (Flower shows it)."""
        out: dict[str, Any] = {name: value for name, value in (
            ("released", self.released), ("adopted", self.adopted), ("handed_off", self.handed_off),
            ("canceled", self.canceled), ("trimmed", self.trimmed),
            ("params_deleted", self.params_deleted)) if value}
        if self.alerts is not None:  # 0 too: alerts cleared is a change
            out["alerts"] = self.alerts
        return out


def reconcile(ctx: Context, bid: str, report: SweepReport) -> None:
    """An intent whose create's outcome is unknown (its answer was a 5xx or a timeout, or its holder
    is gone): adopt the batch whose result lines prove it ours, release when the whole window was
    listed and nothing there is ours, else wait for the next sweep (workers/reconcile.py)."""
    k = ctx.keys
    batch = text_map(ctx.redis.hgetall(k.batch(bid)))
    if batch.get(B.STATE) != "creating":
        ctx.redis.zrem(k.leases, bid)
        return
    decision = reconcile_decision(ctx, bid, batch)
    if decision.action is Verdict.ADOPT:
        assert decision.provider_id is not None
        if ctx.scripts.submitted(bid, decision.provider_id, ctx.clock.now_ms(), owner=""):
            logger.warning("batch.adopted", batch_id=bid, provider_batch_id=decision.provider_id, requests=batch[B.N])
            report.adopted.append(bid)
    elif decision.action is Verdict.RELEASE:
        if release(ctx, bid, decision.reason):
            logger.warning("batch.released", batch_id=bid, reason=decision.reason)
            report.released.append(bid)
    else:
        logger.info("reconcile.waiting", batch_id=bid, reason=decision.reason)


def current_alerts(ctx: Context, now: int) -> dict[str, str]:
    """The alerts as they stand now (read only): batches in progress too long, results not delivered
    as the provider's 29-day end nears, standing alerts, and requests whose reply target refused them."""
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
        submitted = text(ctx.redis.hget(k.batch(bid), B.SUBMITTED_AT))
        if submitted and now - int(submitted) > s.results_warn_age_seconds * 1000:
            days = (now - int(submitted)) / 86_400_000
            alerts[f"expiring:{bid}"] = f"results not delivered, {days:.1f} days after create (limit 29)"
    undeliverable = ctx.redis.zcount(k.undeliverable, f"({now - s.record_ttl_seconds * 1000}", "+inf")
    if undeliverable:
        alerts["undeliverable"] = (f"{undeliverable} requests whose reply target refused them "
                                   "(batchline status CUSTOM_ID shows why; fix the target, then batchline redeliver)")
    return alerts


def stored_alerts(ctx: Context) -> dict[str, str]:
    return text_map(ctx.redis.hgetall(ctx.keys.alerts))


def watchdogs(ctx: Context, now: int, report: SweepReport | None = None) -> dict[str, str]:
    """Rewrite the alerts (shown by `batchline status`) when they changed, and log each one then.
    Returns the alerts."""
    k = ctx.keys
    # undeliverable requests expire with their records; the index forgets them with the same TTL
    ctx.redis.zremrangebyscore(k.undeliverable, "-inf", now - ctx.settings.record_ttl_seconds * 1000)
    alerts = current_alerts(ctx, now)
    if alerts == stored_alerts(ctx):
        return alerts
    if report is not None:
        report.alerts = len(alerts)
    pipe = ctx.redis.pipeline()
    pipe.delete(k.alerts)
    if alerts:
        fields: dict[Any, Any] = dict(alerts)  # redis-py's Mapping key type is invariant
        pipe.hset(k.alerts, mapping=fields)
    pipe.execute()
    for key, message in alerts.items():
        logger.warning("watchdog.alert", alert=key, message=message)
    return alerts


def actions(ctx: Context, bids: list[str], now: int) -> list[tuple[str, Action]]:
    """The table's action for each batch, from its state and lease (one round trip)."""
    pipe = ctx.redis.pipeline(transaction=False)
    for bid in bids:
        pipe.hmget(ctx.keys.batch(bid), B.STATE, B.LEASE_OWNER, B.LEASE_UNTIL)
    return [(bid, action(text(state) or "", lease_state(text(owner), text(until), now)))
            for bid, (state, owner, until) in zip(bids, pipe.execute(), strict=True)]


def sweep(ctx: Context, hand_off: Callable[[str], None]) -> SweepReport:
    k, now = ctx.keys, ctx.clock.now_ms()
    report = SweepReport()
    report.canceled = settle_queued_cancels(ctx)
    # leased claims and creates that ran out, and every batch awaiting delivery (few: they are collected)
    bids = dict.fromkeys(texts(ctx.redis.zrangebyscore(k.leases, "-inf", now)))
    bids.update(dict.fromkeys(texts(ctx.redis.zrange(k.ended, 0, -1))))
    for bid, todo in actions(ctx, list(bids), now):
        if todo is Action.RELEASE:
            if release(ctx, bid, "claim_lease_expired"):
                logger.warning("batch.released", batch_id=bid, reason="claim_lease_expired")
                report.released.append(bid)
        elif todo is Action.RECONCILE:
            reconcile(ctx, bid, report)
        elif todo is Action.HAND_OFF:
            until = handoff_until(ctx.settings, now)
            if ctx.scripts.lease(k.batch(bid), new_owner(HANDOFF), now, until, state="ended"):
                hand_off(bid)
                report.handed_off.append(bid)
        elif todo is Action.FORGET:
            ctx.redis.zrem(k.leases, bid)
            ctx.redis.zrem(k.ended, bid)
    watchdogs(ctx, now, report)
    report.params_deleted = params_gc.collect(ctx, now)
    trimmed = retention.trim(ctx, now)
    report.trimmed = trimmed.batches_trimmed + trimmed.days_rolled
    return report
