"""Deadline requests, routed: before packing, one whose deadline is nearer than the expected batch
turnaround goes real-time at once; after packing, one whose batch still runs close to its deadline is
also sent real-time (a hedge); a real-time call that was lost falls back to its batch.

Each pass reads a bounded slice of a Redis set, decides with the pure rules of `batchline.deadlines`,
and applies every decision atomically (route.lua). The calls themselves are tasks (workers/realtime.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import orjson

from batchline import deadlines, log, quotas, turnaround
from batchline.clock import iso
from batchline.fields import R
from batchline.redis_client import text, texts
from batchline.workers.context import Context

logger = log.get("batchline.deadlines")
#: Requests routed, hedged or recovered per pass (the rest wait for the next tick).
PASS_LIMIT = 1000
#: A real-time call's lease: its HTTP timeout and some; a call not settled by then falls back to its batch.
CALL_LEASE_SECONDS = 90.0


@dataclass
class Routed:
    """What one tick did: the requests to call real-time now, and counts."""

    calls: list[str] = field(default_factory=list)
    batch: int = 0
    realtime: int = 0
    hedged: int = 0
    recovered: int = 0
    late: int = 0  # deadline requests left to their batch: their tenant's real-time budget is spent

    def summary(self) -> dict[str, int]:
        return {
            "batch": self.batch,
            "realtime": self.realtime,
            "hedged": self.hedged,
            "recovered": self.recovered,
            "late": self.late,
        }


def entry(event: str, reason: str, now: int) -> str:
    return orjson.dumps({"event": event, "reason": reason, "at": iso(now)}).decode()


def lease_until(now: int) -> int:
    return now + int(CALL_LEASE_SECONDS * 1000)


class Budgets:
    """Tenants' real-time budgets (`tenants set NAME --realtime-budget-usd X`) against this month's
    real-time spend, read once per tenant per pass."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._seen: dict[str, str | None] = {}

    def over(self, tenant: str) -> str | None:
        """Why `tenant` may not go real-time now, or None."""
        if tenant not in self._seen:
            self._seen[tenant] = self._check(tenant)
        return self._seen[tenant]

    def _check(self, tenant: str) -> str | None:
        raw = self.ctx.redis.hget(self.ctx.keys.tenants, tenant)
        budget = json.loads(raw).get("realtime_budget_usd") if raw else None
        if budget is None:
            return None
        spent = quotas.month_spend(self.ctx.redis, self.ctx.keys, tenant, quotas.REALTIME_KINDS) / 1e6
        if spent < float(budget):
            return None
        return (
            f"tenant {tenant!r} spent ${spent:.2f} real-time this month, its real-time budget is "
            f"${float(budget):.2f}: waits for its batch (late)"
        )


Row = tuple[str, str, str, str]  # rid, route.lua action, reason, history entry


def _apply(ctx: Context, now: int, rows: list[Row], out: Routed) -> None:
    for (rid, _action, reason, _entry), code in zip(rows, ctx.scripts.route(now, lease_until(now), rows), strict=True):
        if code in ("taken", "hedged"):
            out.calls.append(rid)
            out.hedged += code == "hedged"
            out.realtime += code == "taken"
            logger.info(f"request.{'hedged' if code == 'hedged' else 'realtime'}", request_id=rid, reason=reason)
        elif code == "watched":
            out.batch += 1
        elif code == "late":
            out.late += 1
            logger.warning("request.deadline_late", request_id=rid, reason=reason)


def route_new(ctx: Context, out: Routed | None = None) -> Routed:
    """Before packing: each deadline request not yet routed goes real-time or is left to its batch."""
    out = out or Routed()
    k, s, now = ctx.keys, ctx.settings, ctx.clock.now_ms()
    rids = texts(ctx.redis.zrange(k.deadlines_new, 0, PASS_LIMIT - 1))
    if not rids:
        return out
    pipe = ctx.redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hmget(k.request(rid), R.DEADLINE, R.MODEL, R.TENANT)
    expected: dict[str, tuple[float, bool]] = {}
    rows: list[Row] = []
    budgets = Budgets(ctx)
    for rid, (deadline, model, tenant) in zip(rids, pipe.execute(), strict=True):
        m = text(model) or ""
        if m not in expected:
            expected[m] = turnaround.expected(ctx.redis, k, m, s.batch_turnaround_seconds)
        seconds, from_history = expected[m]
        decision = deadlines.route(int(deadline or 0), now, seconds, from_history)
        over = budgets.over(text(tenant) or "") if decision.path is deadlines.Path.REALTIME else None
        if over:
            rows.append((rid, "L", over, entry("deadline_late", over, now)))
        else:
            action = "T" if decision.path is deadlines.Path.REALTIME else "B"
            rows.append((rid, action, decision.reason, entry(f"routed_{decision.path}", decision.reason, now)))
    _apply(ctx, now, rows, out)
    return out


def hedge(ctx: Context, out: Routed | None = None) -> Routed:
    """After packing: watched requests whose batch is still running `BATCHLINE_DEADLINE_MARGIN_SECONDS`
    before their deadline are sent real-time too (still queued: taken real-time instead). Each request
    by its own deadline: a batch's other deadline requests are hedged when their own time comes."""
    out = out or Routed()
    k, now, margin = ctx.keys, ctx.clock.now_ms(), ctx.settings.deadline_margin_seconds
    due: list[tuple[bytes, float]] = ctx.redis.zrangebyscore(  # type: ignore[assignment]  # withscores
        k.deadlines_watch, "-inf", now + int(margin * 1000), start=0, num=PASS_LIMIT, withscores=True
    )
    if not due:
        return out
    pipe = ctx.redis.pipeline(transaction=False)
    for raw, _ in due:
        pipe.hget(k.request(text(raw) or ""), R.TENANT)
    budgets = Budgets(ctx)
    rows: list[Row] = []
    for (raw, deadline), tenant in zip(due, pipe.execute(), strict=True):
        rid = text(raw) or ""
        over = budgets.over(text(tenant) or "")
        if over:
            rows.append((rid, "L", over, entry("deadline_late", over, now)))
            continue
        reason = (
            f"batch still running {(int(deadline) - now) / 1000:.0f} s before the deadline "
            f"(margin {margin:g} s, BATCHLINE_DEADLINE_MARGIN_SECONDS)"
        )
        rows.append((rid, "H", reason, entry("hedged", reason, now)))
    _apply(ctx, now, rows, out)
    return out


def recover_lost(ctx: Context, out: Routed | None = None) -> Routed:
    """Real-time calls whose lease ran out (a worker died, a task was lost): back to their batch."""
    out = out or Routed()
    k, now = ctx.keys, ctx.clock.now_ms()
    lost = texts(ctx.redis.zrangebyscore(k.realtime, "-inf", now, start=0, num=PASS_LIMIT))
    if lost:
        reason = "real-time call lost (its lease ran out): waits for its batch"
        codes = ctx.scripts.route(now, 0, [(rid, "F", reason, entry("realtime_lost", reason, now)) for rid in lost])
        out.recovered += sum(code == "back" for code in codes)
        logger.warning("realtime.lost", requests=len(lost))
    return out


def tick(ctx: Context) -> Routed:
    """The route tick (every pack interval): recover lost calls, route new requests, hedge late batches."""
    out = recover_lost(ctx)
    route_new(ctx, out)
    return hedge(ctx, out)


def due(ctx: Context) -> dict[str, int] | None:
    """Beat's check: something to route, to hedge, or a lost call to recover."""
    k, now = ctx.keys, ctx.clock.now_ms()
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.zcard(k.deadlines_new)
    pipe.zcount(k.deadlines_watch, "-inf", now + int(ctx.settings.deadline_margin_seconds * 1000))
    pipe.zcount(k.realtime, "-inf", now)
    new, late, lost = (int(x) for x in pipe.execute())
    seen = {name: n for name, n in (("to_route", new), ("to_hedge", late), ("lost", lost)) if n}
    return seen or None
