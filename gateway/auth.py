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


def client_address(peer: str | None, headers: Headers, trusted_hops: int) -> str:
    """The caller's address: the TCP peer, or with `trusted_hops` proxies in front (each appending to
    X-Forwarded-For) the entry the outermost trusted one wrote. Entries further left are the
    client's own to forge, so they are never read; with no trusted hops the header is ignored."""
    peer = peer or "unknown"
    if trusted_hops <= 0:
        return peer
    chain = [a.strip() for h in headers.getlist("x-forwarded-for") for a in h.split(",") if a.strip()]
    if not chain:
        return peer
    return chain[-min(trusted_hops, len(chain))]


class RateLimiter:
    """Fixed windows in Redis, shared by every replica: `limit` requests per `window` seconds per
    API key, and `failure_limit` failed authentications per window per client address. An address
    over its failure limit is refused before its key is looked at, so a guess that happens to be
    right cannot be told from a wrong one, and a guesser costs one counter per window, not one per
    key it tries."""

    def __init__(self, client: redis.Redis, keys: Keys, limit: int, window: int, failure_limit: int) -> None:
        self.redis, self.keys, self.limit, self.window = client, keys, limit, window
        self.failure_limit = failure_limit

    def _slot(self) -> tuple[int, float]:
        now = time.time()
        return int(now // self.window), self.window - now % self.window

    def _count(self, name: str) -> int:
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(name)
        pipe.expire(name, self.window + 1)
        count, _ = pipe.execute()
        return int(count)

    def refuse_guessing(self, address: str) -> None:
        slot, retry = self._slot()
        failures = self.redis.get(self.keys.gateway_auth_failures(key_hash(address), slot))
        if failures is not None and int(failures) >= self.failure_limit:
            raise ApiError(
                429,
                f"too many failed authentications from this address (at most {self.failure_limit} "
                f"per {self.window} s); retry later",
                retry_after=retry,
            )

    def failed(self, address: str) -> None:
        slot, _ = self._slot()
        self._count(self.keys.gateway_auth_failures(key_hash(address), slot))

    def hit(self, key: str) -> None:
        slot, retry = self._slot()
        if self._count(self.keys.gateway_rate(key_hash(key), slot)) > self.limit:
            raise ApiError(
                429, f"rate limit: at most {self.limit} requests per {self.window} s per API key", retry_after=retry
            )
