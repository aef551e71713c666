"""Is a tick's work due? Beat asks before it sends pack, poll, sweep or the outbox tick, so a tick
that would find nothing to do is never a task (Flower lists the work, not the ticks).

Each check only reads Redis (a few keys, one round trip or two) and applies the same rule the task
applies, so the timing guarantees are the task's own: a batch goes out when the packing rule says so
(`workers/packing.py`), open batches are polled every poll interval, a sweep runs whenever one of
its table's actions, a queued cancel, an alert change or a trim is waiting, and an outbox send goes
when it is due (its retry's backoff or Retry-After). A check answers what beat tells the task (it
shows in Flower as the task's kwargs), or None for "nothing to do". Beat marks an outbox tick on its
way as it sends it (`outbox_tick_sending`): a second tick would find the first one's sends taken.
"""

from __future__ import annotations

from typing import Any

from batchline import pending
from batchline.fields import B
from batchline.redis_client import texts
from batchline.workers import params_gc, retention
from batchline.workers.aggregator import limits, queue_view
from batchline.workers.context import Context
from batchline.workers.packing import next_batch
from batchline.workers.sweeper import Action, actions, current_alerts, stored_alerts

Seen = dict[str, Any]

#: Tenants named in a pack's kwargs (the oldest heads first): enough to say whose work it is.
TENANTS_SHOWN = 5


def pack_due(ctx: Context) -> Seen | None:
    """A batch is due by the packing rule (full, or its oldest request waited `max_wait`), or a
    paused submission's probe is due, or 0.1's pending list has requests to move."""
    k, r = ctx.keys, ctx.redis
    pipe = r.pipeline(transaction=False)
    pipe.llen(k.legacy_pending)
    pipe.exists(k.create_backoff)
    pipe.hget(k.paused, "probed_at")
    legacy, backoff, probed_at = pipe.execute()
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
    """Open batches exist, polling is not backing off, and no poll holds the round's lock (a round
    that started less than 0.8 poll intervals ago: the task would skip, so the tick is not sent)."""
    k = ctx.keys
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.zcard(k.open)
    pipe.exists(k.poll_backoff)
    pipe.hget(k.poll_lock(), B.LEASE_UNTIL)
    open_, backoff, locked_until = pipe.execute()
    if locked_until is not None and int(locked_until) > ctx.clock.now_ms():
        return None
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
    if ended_to_move := sum(todo is not Action.WAIT for _, todo in actions(ctx, texts(ended), now)):
        seen["ended_to_hand_off"] = ended_to_move
    if current_alerts(ctx, now) != stored_alerts(ctx):
        seen["alerts_changed"] = True
    if params := params_gc.due(ctx, now):
        seen["params_to_delete"] = params
    if trim := len(retention.settled_old_batches(ctx, now)) + len(retention.days_to_roll(ctx, now)):
        seen["to_trim"] = trim
    return seen or None


def outbox_due(ctx: Context) -> Seen | None:
    """A webhook or SQS send is due (a retry, a crashed sender's, one whose send task never came) and
    no outbox tick beat sent is still on its way to a worker (its first claim takes what is due).
    Requests just handed off are held for the send task dispatched for them: not due, not counted."""
    k = ctx.keys
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.zcount(k.outbox, "-inf", ctx.clock.now_ms())
    pipe.exists(k.outbox_tick)
    due, on_its_way = pipe.execute()
    return {"due": int(due)} if due and not on_its_way else None


def outbox_tick_sending(ctx: Context, expires_seconds: float) -> None:
    """Beat sends an outbox tick: marked on its way until its first claim clears the mark
    (`delivery.run_rounds`) or it expires unstarted (Celery drops it then, and so the mark goes)."""
    ctx.redis.set(ctx.keys.outbox_tick, ctx.clock.now_ms(), px=max(1, int(expires_seconds * 1000)))
