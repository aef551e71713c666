"""Who is calling: the API key from `x-api-key` or `Authorization: Bearer`, and its rate limit.

The key is looked up by its SHA-256 and confirmed in constant time (batchline/tenants.py); it is
never logged, and errors never echo it.
"""

from __future__ import annotations

import time

import redis
from starlette.datastructures import Headers

from batchline.apikeys import key_hash
from batchline.keys import Keys
from batchline.tenants import Tenant, TenantStore

from .errors import ApiError


def presented_key(headers: Headers) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def authenticate(store: TenantStore, headers: Headers) -> Tenant:
    key = presented_key(headers)
    if key is None:
        raise ApiError(401, "x-api-key header is required (or Authorization: Bearer)")
    tenant = store.authenticate(key)
    if tenant is None:
        raise ApiError(401, "invalid x-api-key")
    return tenant


class RateLimiter:
    """A fixed window per key in Redis, shared by every replica: `limit` requests per `window` seconds."""

    def __init__(self, client: redis.Redis, keys: Keys, limit: int, window: int) -> None:
        self.redis, self.keys, self.limit, self.window = client, keys, limit, window

    def hit(self, headers: Headers) -> None:
        key = presented_key(headers) or ""
        now = time.time()
        slot = int(now // self.window)
        name = self.keys.gateway_rate(key_hash(key), slot)
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, self.window + 1)
        count, _ = pipe.execute()
        if int(count) > self.limit:
            retry = (slot + 1) * self.window - now
            raise ApiError(
                429, f"rate limit: at most {self.limit} requests per {self.window} s per API key", retry_after=retry
            )
