"""What is waiting to be packed: counts from the stats hash, the oldest from the tenants' list heads.

Pending work is kept per tenant (fair share, `batchline/lua/pending.lua` and `claim.lua`); this is
the one reader of that layout outside the scripts.
"""

from __future__ import annotations

from typing import NamedTuple

import redis

from batchline.keys import Keys


class Pending(NamedTuple):
    requests: int  # queued, waiting for a batch (every tenant)
    bytes: int  # their create-body bytes
    in_flight: int  # in batches not yet ended
    oldest_queued_at_ms: int | None  # of the oldest list head; None when nothing waits


def read(client: redis.Redis, keys: Keys) -> Pending:
    pipe = client.pipeline(transaction=False)
    pipe.hmget(keys.stats, "pending", "pending_bytes", "in_flight")
    pipe.zrange(keys.pending_tenants, 0, 0, withscores=True)
    (n, pbytes, in_flight), head = pipe.execute()
    oldest = int(head[0][1]) if head else None
    # A tenant listed has a list with something in it: never report nothing waiting then (a count
    # that drifted low must not stall packing; the claim that follows drops what was canceled)
    requests = max(int(n or 0), 0 if oldest is None else 1)
    return Pending(requests, max(0, int(pbytes or 0)), int(in_flight or 0), oldest)


def by_tenant(client: redis.Redis, keys: Keys, limit: int = 1000) -> dict[str, int]:
    """List length per tenant with pending work (requests canceled while queued still count until a
    claim passes them), for the tenants of the oldest heads first, at most `limit` of them."""
    tenants = [t.decode() for t in client.zrange(keys.pending_tenants, 0, limit - 1)]  # type: ignore[union-attr]
    pipe = client.pipeline(transaction=False)
    for t in tenants:
        pipe.llen(keys.pending_of(t))
    return dict(zip(tenants, (int(n) for n in pipe.execute()), strict=True))


def count(client: redis.Redis, keys: Keys) -> int:
    """Requests waiting for a batch, every tenant."""
    return max(0, int(client.hget(keys.stats, "pending") or 0))
