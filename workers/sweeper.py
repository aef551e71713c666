"""The sweeper: every step that holds work has a lease, and this returns it when its holder is gone.

- a claim whose lease ran out before the intent: its requests go back to pending;
- an intent (`creating`) whose lease ran out: reconcile with the provider's batch list, adopt the
  batch that was created, or release the requests when nothing was;
- an ended batch that no result worker finished: handed off again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import orjson
from anthropic.types.messages import MessageBatch

from batchline import log
from batchline.clock import now_ms
from batchline.redis_client import text, text_map, texts
from batchline.workers.aggregator import release
from batchline.workers.context import Context
from batchline.workers.lines import iter_lines
from batchline.workers.provider import classify

logger = log.get("batchline.sweeper")


@dataclass
class SweepReport:
    released: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    handed_off: list[str] = field(default_factory=list)


def _total(b: MessageBatch) -> int:
    c = b.request_counts
    return c.processing + c.succeeded + c.errored + c.canceled + c.expired


def _first_line_is_ours(ctx: Context, bid: str, pid: str) -> bool:
    """Read the first result line of an ended provider batch: does its id name a request of `bid`?"""
    with ctx.anthropic.messages.batches.with_streaming_response.results(pid) as resp:
        for line in iter_lines(resp.iter_bytes(16 * 1024)):
            owner = ctx.redis.hget(ctx.keys.request(orjson.loads(line)["custom_id"]), "b")
            return text(owner) == bid
    return False


def _rivals(ctx: Context, bid: str, n: int) -> int:
    """Other unsaved creates of the same size: a batch of that size could be theirs."""
    count = 0
    for other in texts(ctx.redis.zrange(ctx.keys.leases, 0, -1)):
        if other != bid:
            state, size = ctx.redis.hmget(ctx.keys.batch(other), "state", "n")
            count += state == b"creating" and size is not None and int(size) == n
    return count


def reconcile(ctx: Context, bid: str, report: SweepReport) -> None:
    """An intent whose holder is gone: was the batch created? Adopt it only when the provider's list
    proves it (one batch of that size in the create's time window and no rival create of that size,
    or its first result line names one of our requests); release only when the window has passed
    with nothing there; otherwise wait for the next sweep."""
    k, s = ctx.keys, ctx.settings
    batch = text_map(ctx.redis.hgetall(k.batch(bid)))
    if batch.get("state") != "creating":
        ctx.redis.zrem(k.leases, bid)
        return
    n, intent_at = int(batch["n"]), int(batch["intent_at"])
    skew = int(s.clock_skew_seconds * 1000)
    window_end = intent_at + int(s.create_timeout_seconds * 1000) + skew
    try:
        page = ctx.anthropic.messages.batches.list(limit=1000)
        candidates = sorted(
            (abs(int(b.created_at.timestamp() * 1000) - intent_at), b) for b in page.data
            if _total(b) == n and intent_at - skew <= int(b.created_at.timestamp() * 1000) <= window_end
            and not ctx.redis.hexists(k.provider_index, b.id)
        )
        chosen = None
        if len(candidates) == 1 and not _rivals(ctx, bid, n):
            chosen = candidates[0][1]
        else:
            chosen = next((b for _, b in candidates
                           if b.processing_status == "ended" and _first_line_is_ours(ctx, bid, b.id)), None)
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        logger.warning("reconcile.failed", batch_id=bid, status=classify(exc).status)
        return
    if chosen is not None:
        if ctx.scripts.submitted(
            keys=[k.leases, k.open, k.provider_index, k.batch(bid), k.batch_members(bid)],
            args=[k.request(""), bid, chosen.id, now_ms(), 1],
        ):
            logger.warning("batch.adopted", batch_id=bid, provider_batch_id=chosen.id, requests=n)
            report.adopted.append(bid)
        return
    if candidates or now_ms() < window_end:
        logger.info("reconcile.waiting", batch_id=bid, candidates=len(candidates))
        return
    if release(ctx, bid, "reconciled_not_created"):
        logger.warning("batch.released", batch_id=bid, reason="reconciled_not_created")
        report.released.append(bid)


def watchdogs(ctx: Context, now: int) -> dict[str, str]:
    """Batches in progress too long, and results not delivered as the provider's 29-day end nears.
    Alerts are rewritten each sweep (shown by `batchline status`) and logged."""
    k, s = ctx.keys, ctx.settings
    alerts: dict[str, str] = {}
    stuck: list[tuple[bytes, float]] = ctx.redis.zrangebyscore(  # type: ignore[assignment]
        k.open, "-inf", now - s.stuck_batch_seconds * 1000, withscores=True
    )
    for raw, opened_at in stuck:
        hours = (now - opened_at) / 3_600_000
        alerts[f"stuck:{raw.decode()}"] = f"batch in progress for {hours:.1f} h"
    for bid in texts(ctx.redis.zrange(k.ended, 0, -1)):
        submitted = text(ctx.redis.hget(k.batch(bid), "submitted_at"))
        if submitted and now - int(submitted) > s.results_warn_age_seconds * 1000:
            days = (now - int(submitted)) / 86_400_000
            alerts[f"expiring:{bid}"] = f"results not delivered, {days:.1f} days after create (limit 29)"
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
    # Hand an ended batch off again only when no collector holds it and the last hand-off is older than
    # a collect lease: a busy results queue must not fill up with copies of the same task.
    stale = now - int(max(ctx.settings.sweep_interval_seconds, ctx.settings.collect_lease_seconds) * 1000)
    for bid in texts(ctx.redis.zrangebyscore(k.ended, "-inf", stale)):
        if not ctx.redis.exists(k.collect_lock(bid)):
            ctx.redis.zadd(k.ended, {bid: now})
            hand_off(bid)
            report.handed_off.append(bid)
    return report
