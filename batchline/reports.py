"""Read-only views of the pipeline computed from Redis, so any replica can serve them:
counts, costs, pauses and alerts. Used by `batchline status`, `batchline costs` and the metrics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

from batchline import pending
from batchline.clock import now_ms
from batchline.fields import B
from batchline.keys import Keys
from batchline.redis_client import text, text_map, texts
from batchline.replication import replication


@dataclass
class Snapshot:
    pending: int
    pending_bytes: int
    oldest_pending_age_s: float
    in_flight: int
    open_batches: int
    awaiting_delivery: int
    leased: int
    paused: dict[str, str]
    alerts: dict[str, str]
    counters: dict[str, int]
    open: list[dict[str, Any]] = field(default_factory=list)
    undeliverable: int = 0  # requests whose reply target refused them, awaiting `batchline redeliver`
    waiting_by_tenant: dict[str, int] = field(default_factory=dict)  # per-tenant pending list lengths
    redis: dict[str, Any] = field(default_factory=dict)  # role, replicas in sync, lag (batchline/replication.py)
    # the outbox of webhook and SQS sends (workers/delivery.py): requests delivering, those of them
    # due now (not held for a send task, not being sent), and how long the most overdue has waited
    outbox: int = 0
    outbox_due: int = 0
    oldest_outbox_due_age_s: float = 0.0

    def by(self, kind: str) -> dict[tuple[str, ...], int]:
        """Counters of one kind ('accepted', 'delivered', 'redriven', 'canceled') keyed by their labels."""
        out = {}
        for name, n in self.counters.items():
            head, _, rest = name.partition(":")
            if head == kind:
                out[tuple(rest.split(":"))] = n
        return out

    def outstanding_by_tenant(self) -> dict[str, int]:
        """Accepted and not yet settled, per tenant (queued, in a batch, or awaiting delivery)."""
        out: dict[str, int] = defaultdict(int)
        for (tenant,), n in self.by("accepted").items():
            out[tenant] += n
        for labels, n in self.by("delivered").items():
            out[labels[0]] -= n
        for (tenant,), n in self.by("canceled").items():
            out[tenant] -= n
        return dict(out)


def snapshot(client: redis.Redis, keys: Keys, with_open: bool = False) -> Snapshot:
    queue = pending.read(client, keys)
    pipe = client.pipeline(transaction=False)
    for zset in (keys.open, keys.ended, keys.leases):
        pipe.zcard(zset)
    for hash_key in (keys.paused, keys.alerts, keys.counters):
        pipe.hgetall(hash_key)
    pipe.zcard(keys.undeliverable)
    now = now_ms()
    pipe.zcard(keys.outbox)
    pipe.zcount(keys.outbox, "-inf", now)
    pipe.zrange(keys.outbox, 0, 0, withscores=True)
    n_open, n_ended, n_leased, paused, alerts, counters, n_undeliverable, n_outbox, n_due, first = pipe.execute()
    age = 0.0
    if queue.oldest_queued_at_ms is not None:
        age = max(0.0, (now - queue.oldest_queued_at_ms) / 1000)
    snap = Snapshot(
        pending=queue.requests, pending_bytes=queue.bytes, oldest_pending_age_s=age,
        in_flight=queue.in_flight, open_batches=int(n_open), awaiting_delivery=int(n_ended),
        leased=int(n_leased), paused=text_map(paused), alerts=text_map(alerts),
        counters={text(k) or "": int(v) for k, v in counters.items()},
        undeliverable=int(n_undeliverable),
        outbox=int(n_outbox), outbox_due=int(n_due),
        oldest_outbox_due_age_s=max(0.0, (now - first[0][1]) / 1000) if first else 0.0,
        waiting_by_tenant=pending.by_tenant(client, keys),
        redis=replication(client),
    )
    if with_open:
        opened: list[tuple[bytes, float]] = client.zrange(keys.open, 0, 49, withscores=True)  # type: ignore[assignment]
        for raw, submitted in opened:
            bid = raw.decode()
            b = text_map(client.hgetall(keys.batch(bid)))
            snap.open.append({"batch_id": bid, "provider_batch_id": b.get(B.PROVIDER_ID),
                              "requests": int(b.get(B.N, 0)), "age_s": (now - submitted) / 1000,
                              "adopted": b.get(B.ADOPTED) == "1"})
    return snap


@dataclass
class CostRow:
    day: str
    tenant: str
    model: str
    requests: int
    batch_usd: float
    standard_usd: float
    unpriced: int = 0  # succeeded requests whose model has no price (not in batch_usd / standard_usd)
    # deadlines (docs/deadlines.md): answers delivered from the real-time Messages API, at standard price
    # (not in `requests`, `batch_usd`, `standard_usd`), and answers paid for but not delivered (a hedge's loser)
    realtime_requests: int = 0
    realtime_usd: float = 0.0
    wasted_requests: int = 0
    wasted_usd: float = 0.0

    @property
    def spent_usd(self) -> float:
        """Everything paid: batch, real-time and wasted."""
        return self.batch_usd + self.realtime_usd + self.wasted_usd


def cost_rows(client: redis.Redis, keys: Keys) -> list[CostRow]:
    # months first: days older than BATCHLINE_COST_DAYS_KEPT are rolled into them (day = 'YYYY-MM')
    days = sorted(texts(client.smembers(keys.cost_months)))
    days += sorted(texts(client.smembers(keys.cost_days)))
    rows = []
    for day in days:
        groups: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        for name, value in text_map(client.hgetall(keys.cost_day(day))).items():
            tenant, _, rest = name.partition("|")
            model, _, kind = rest.rpartition("|")
            groups[(tenant, model)][kind] = int(value)
        for (tenant, model), v in sorted(groups.items()):
            rows.append(CostRow(day, tenant, model, v.get("requests", 0), v.get("batch", 0) / 1e6,
                                v.get("standard", 0) / 1e6, v.get("unpriced", 0), v.get("realtime_requests", 0),
                                v.get("realtime", 0) / 1e6, v.get("wasted_requests", 0), v.get("wasted", 0) / 1e6))
    return rows

