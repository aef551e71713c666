"""Tenant quotas: queued requests, queued bytes and the monthly budget (the decisions are pure).

Usage comes from the counters the intake, cancel and delivery scripts keep per tenant and from
the cost ledger. The queued quotas are enforced inside intake.lua, atomically with the write, for
every producer (the Python one, the gateway, `batchline submit`): `intake_limits` turns a tenant's
quotas and the admission settings into the script's arguments. The budget, known only once results
are costed, is checked before the write (`Registry`, `check`), so it can be passed by what is in flight.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import redis

from batchline.errors import Backpressure
from batchline.keys import Keys
from batchline.redis_client import text

#: the labels intake.lua answers for a refusal by a tenant's own quota (not admission control)
QUOTAS = ("max_queued", "max_queued_bytes", "monthly_budget_usd")


class QuotaExceeded(Backpressure):
    """New work would go over one of the tenant's quotas; `quota` names it. A `Backpressure`: from
    `submit_many` it carries `report` and `index` the same way; the gateway answers it 429."""

    def __init__(self, quota: str, message: str, current: int = 0, maximum: int = 0,
                 tenant: str | None = None) -> None:
        super().__init__(quota, current, maximum, tenant, message=f"{quota}: {message}")
        self.quota = quota
        self.message = message


def refused(quota: str, tenant: str, current: int, maximum: int) -> QuotaExceeded:
    """intake.lua's refusal by one of the tenant's quotas (the budget's figures in cents)."""
    if quota == "monthly_budget_usd":
        return QuotaExceeded(quota, f"tenant {tenant!r} spent ${current / 100:.2f} this month, its budget is "
                             f"${maximum / 100:.2f}", current, maximum, tenant)
    what = "requests" if quota == "max_queued" else "bytes"
    return QuotaExceeded(quota, f"tenant {tenant!r} has {current} {what} queued; more would exceed its limit "
                         f"of {maximum}", current, maximum, tenant)


@dataclass(frozen=True, slots=True)
class Limits:
    """A tenant's quotas; None means unlimited."""

    max_queued: int | None = None
    max_queued_bytes: int | None = None
    monthly_budget_usd: float | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    queued: int  # accepted and not yet settled (queued, in a batch, or awaiting delivery)
    queued_bytes: int
    month_usd: float  # spent this calendar month (UTC): batch, real-time and wasted answers


def check(tenant: str, limits: Limits, usage: Usage, requests: int, size: int) -> None:
    """Raise `QuotaExceeded` when `requests` more requests of `size` bytes do not fit."""
    if limits.max_queued is not None and usage.queued + requests > limits.max_queued:
        raise QuotaExceeded(
            "max_queued",
            f"tenant {tenant!r} has {usage.queued} requests queued; {requests} more would exceed "
            f"its limit of {limits.max_queued}",
        )
    if limits.max_queued_bytes is not None and usage.queued_bytes + size > limits.max_queued_bytes:
        raise QuotaExceeded(
            "max_queued_bytes",
            f"tenant {tenant!r} has {usage.queued_bytes} bytes queued; {size} more would "
            f"exceed its limit of {limits.max_queued_bytes}",
        )
    if limits.monthly_budget_usd is not None and usage.month_usd >= limits.monthly_budget_usd:
        raise QuotaExceeded(
            "monthly_budget_usd",
            f"tenant {tenant!r} spent ${usage.month_usd:.2f} this month, its budget is "
            f"${limits.monthly_budget_usd:.2f}",
        )


def intake_limits(admission: tuple[int, int], quota: Limits | None, over_budget: bool) -> tuple[int, str, int, str]:
    """intake.lua's per-tenant arguments: (max requests, its label, max bytes, its label), -1 for none.
    `admission`: BATCHLINE_TENANT_MAX_QUEUED_* for this tenant (0: none); the tighter of it and the
    tenant's quota binds, and a refusal names the one that did. Over budget, nothing new is taken."""
    n, n_label, b, b_label = admission[0] or -1, "tenant_queued_requests", admission[1] or -1, "tenant_queued_bytes"
    if over_budget:
        return 0, "monthly_budget_usd", b, b_label
    if quota is not None and quota.max_queued is not None and (n < 0 or quota.max_queued <= n):
        n, n_label = quota.max_queued, "max_queued"
    if quota is not None and quota.max_queued_bytes is not None and (b < 0 or quota.max_queued_bytes <= b):
        b, b_label = quota.max_queued_bytes, "max_queued_bytes"
    return n, n_label, b, b_label


class Registry:
    """The registered tenants' quotas and this month's spend, as intake needs them per chunk: read
    from Redis at most every `ttl` seconds per tenant (a change of quota holds within that)."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl: float = 5.0) -> None:
        self.redis, self.keys, self.ttl = client, keys, ttl
        self._cache: dict[str, tuple[float, Limits | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, tenant: str) -> tuple[Limits | None, float]:
        """(the tenant's quotas or None when it is not registered, its spend this month in USD)."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(tenant)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1], hit[2]
        raw = self.redis.hget(self.keys.tenants, tenant)
        limits: Limits | None = None
        spent = 0.0
        if raw is not None:
            data = json.loads(raw)
            limits = Limits(data.get("max_queued"), data.get("max_queued_bytes"), data.get("monthly_budget_usd"))
            if limits.monthly_budget_usd is not None:
                spent = usage(self.redis, self.keys, tenant).month_usd
        with self._lock:
            self._cache[tenant] = (now, limits, spent)
        return limits, spent


def _int(value: bytes | str | None) -> int:
    return int(value) if value else 0


def usage(client: redis.Redis, keys: Keys, tenant: str, now_s: float | None = None) -> Usage:
    """The tenant's current usage, from the counters hash and this month's cost hashes."""
    fields = [f"{kind}:{tenant}" for kind in ("accepted", "canceled", "accepted_bytes", "settled_bytes")]
    accepted, canceled, acc_bytes, settled_bytes = client.hmget(keys.counters, fields)
    delivered = 0
    prefix = f"delivered:{tenant}:".encode()
    for name, n in client.hscan_iter(keys.counters, match=f"delivered:{tenant}:*"):
        if name.startswith(prefix):
            delivered += int(n)
    return Usage(
        queued=max(0, _int(accepted) - delivered - _int(canceled)),
        queued_bytes=max(0, _int(acc_bytes) - _int(settled_bytes)),
        month_usd=month_spend(client, keys, tenant, SPEND_KINDS, now_s) / 1e6,
    )


#: Ledger kinds that are spend: batch answers, real-time answers (deadlines), answers not delivered
SPEND_KINDS = ("batch", "realtime", "wasted")
#: ... and those a tenant's real-time budget counts: real-time answers, delivered or not
REALTIME_KINDS = ("realtime", "wasted_realtime")


def month_spend(client: redis.Redis, keys: Keys, tenant: str, kinds: tuple[str, ...],
                now_s: float | None = None) -> int:
    """Micro-dollars of `kinds` the tenant spent this month (UTC), from the cost ledger's days."""
    month = time.strftime("%Y-%m", time.gmtime(time.time() if now_s is None else now_s))
    micros = 0
    for raw in client.smembers(keys.cost_days):
        day = text(raw) or ""
        if day.startswith(month):
            for model_field, v in client.hscan_iter(keys.cost_day(day), match=f"{tenant}|*"):
                name = text(model_field) or ""
                if name.startswith(f"{tenant}|") and name.rpartition("|")[2] in kinds:
                    micros += int(v)
    return micros
