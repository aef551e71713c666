"""Tenant quotas: queued requests, queued bytes and the monthly budget (the decision is pure).

Usage comes from the counters the intake, cancel and delivery scripts keep per tenant and from
the cost ledger; `check` decides whether new work fits, and names the quota when it does not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from batchline.errors import PermanentError
from batchline.keys import Keys
from batchline.redis_client import text


class QuotaExceeded(PermanentError):
    """New work would go over one of the tenant's quotas; `quota` names it."""

    def __init__(self, quota: str, message: str) -> None:
        super().__init__(f"{quota}: {message}")
        self.quota = quota
        self.message = message


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
    month_usd: float  # spent this calendar month (UTC), at batch prices


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
    month = time.strftime("%Y-%m", time.gmtime(time.time() if now_s is None else now_s))
    micros = 0
    for raw in client.smembers(keys.cost_days):
        day = text(raw) or ""
        if day.startswith(month):
            for model_field, v in client.hscan_iter(keys.cost_day(day), match=f"{tenant}|*|batch"):
                if (text(model_field) or "").startswith(f"{tenant}|"):
                    micros += int(v)
    return Usage(
        queued=max(0, _int(accepted) - delivered - _int(canceled)),
        queued_bytes=max(0, _int(acc_bytes) - _int(settled_bytes)),
        month_usd=micros / 1e6,
    )
