"""This deployment's recent batch turnarounds, per model, kept in Redis (bounded): what a deadline
request compares its time left with before packing (workers/deadlines.py)."""

from __future__ import annotations

import re

import redis

from batchline.deadlines import p95
from batchline.keys import Keys

#: Turnarounds kept per model (newest first); the p95 of these is the expected turnaround.
SAMPLES = 200
#: A model's history lives this long after its last batch: a model no longer used (or a name a
#: tenant made up: `params.model` is theirs) leaves no key behind for good.
TTL_SECONDS = 30 * 24 * 3600
#: A dated model id (`claude-sonnet-4-5-20250929`) shares its alias's history: results name the
#: dated id, requests often the alias.
_DATED = re.compile(r"-\d{8}$")


def family(model: str) -> str:
    return _DATED.sub("", model)[:100]


def record(client: redis.Redis, keys: Keys, models: set[str], seconds: float) -> None:
    """One batch's turnaround (claim to results delivered) for each model it carried."""
    pipe = client.pipeline(transaction=False)
    for model in {family(m) for m in models if m}:
        pipe.lpush(keys.turnaround(model), f"{seconds:.3f}")
        pipe.ltrim(keys.turnaround(model), 0, SAMPLES - 1)
        pipe.expire(keys.turnaround(model), TTL_SECONDS)
    pipe.execute()


def expected(client: redis.Redis, keys: Keys, model: str, default_s: float) -> tuple[float, bool]:
    """(seconds, from history): the p95 of the model's recent batches, else `default_s`."""
    samples = [float(x) for x in client.lrange(keys.turnaround(family(model)), 0, SAMPLES - 1)]
    if not samples:
        return default_s, False
    return p95(samples), True
