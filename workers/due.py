"""Is a tick's work due? Beat asks before it sends pack, poll or sweep, so a tick that would find
nothing to do is never a task (Flower lists the work, not the ticks).

Each check only reads Redis (a few keys, one round trip or two) and applies the same rule the task
applies, so the timing guarantees are the task's own: a batch goes out when the packing rule says so
(`workers/packing.py`), open batches are polled every poll interval, and a sweep runs whenever one of
its table's actions, a queued cancel, an alert change or a trim is waiting. A check answers what beat
tells the task (it shows in Flower as the task's kwargs), or None for "nothing to do".
"""

from __future__ import annotations

from typing import Any

from batchline import pending
from batchline.fields import B
from batchline.leases import lease_state
from batchline.redis_client import text
from batchline.workers import retention
from batchline.workers.aggregator import limits, queue_view
from batchline.workers.context import Context
from batchline.workers.packing import next_batch
from batchline.workers.sweeper import Action, action, current_alerts, stored_alerts

Seen = dict[str, Any]

#: Tenants named in a pack's kwargs (the oldest heads first): enough to say whose work it is.
TENANTS_SHOWN = 5


def pack_due(ctx: Context) -> Seen | None:
    """A batch is due by the packing rule (full, or its oldest request waited `max_wait`), or a
    paused submission's probe is due, or 0.1's pending list has requests to move."""
    k, r = ctx.keys, ctx.redis
    legacy, backoff, probed_at = r.llen(k.legacy_pending), r.exists(k.create_backoff), r.hget(k.paused, "probed_at")
    if legacy:
        return {"reason": "migrate", "legacy_pending": int(legacy)}
    if backoff:
        return None
    if probed_at is not None:
        waited = ctx.clock.now_ms() - int(probed_at)
        return {"reason": "probe"} if waited >= ctx.settings.pause_probe_seconds * 1000 else None
    view = queue_view(ctx)
    take = next_batch(view, limits(ctx, view.in_flight, lift=False))
    if take is None:
        return None
    return {"reason": take.reason, "pending": view.pending, "in_flight": view.in_flight,
            "tenants": pending.by_tenant(r, k, TENANTS_SHOWN)}


def poll_due(ctx: Context) -> Seen | None:
    """Open batches exist and polling is not backing off."""
    k = ctx.keys
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.zcard(k.open)
    pipe.exists(k.poll_backoff)
    open_, backoff = pipe.execute()
    return {"open": int(open_)} if open_ and not backoff else None


def sweep_due(ctx: Context) -> Seen | None:
    """Anything of the sweeper's: a lease run out, an ended batch to hand off or forget, a request
    canceled while queued, an alert to raise or clear, or a batch or cost day to trim."""
    k, s, now = ctx.keys, ctx.settings, ctx.clock.now_ms()
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.llen(k.canceled_queue)
    pipe.zcount(k.leases, "-inf", now)
    pipe.zrange(k.ended, 0, -1)
    pipe.zcount(k.undeliverable, "-inf", now - s.record_ttl_seconds * 1000)
    canceled, expired, ended, forgotten = pipe.execute()
    seen: Seen = {}
    if canceled:
        seen["canceled"] = int(canceled)
    if expired:
        seen["leases_expired"] = int(expired)
    if forgotten:
        seen["undeliverable_expired"] = int(forgotten)
    if ended_to_move := _ended_to_move(ctx, [text(b) or "" for b in ended], now):
        seen["ended_to_hand_off"] = ended_to_move
    if current_alerts(ctx, now) != stored_alerts(ctx):
        seen["alerts_changed"] = True
    if trim := len(retention.settled_old_batches(ctx, now)) + len(retention.days_to_roll(ctx, now)):
        seen["to_trim"] = trim
    return seen or None


def _ended_to_move(ctx: Context, bids: list[str], now: int) -> int:
    """Ended batches the sweep's table would act on (hand off again, or forget): few, they are collected."""
    if not bids:
        return 0
    pipe = ctx.redis.pipeline(transaction=False)
    for bid in bids:
        pipe.hmget(ctx.keys.batch(bid), B.STATE, B.LEASE_OWNER, B.LEASE_UNTIL)
    return sum(action(text(state) or "", lease_state(text(owner), text(until), now)) is not Action.WAIT
               for state, owner, until in pipe.execute())
