"""Tenants: an identity with API keys, quotas, a weight and the reply targets it may name.

Stored in Redis (`Keys.tenants`: name -> settings as JSON; `Keys.api_keys`: key digest -> tenant and
expiry). A key is shown once, when made; only its SHA-256 is kept (batchline/apikeys.py).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import redis

from batchline import apikeys, webhooks
from batchline.clock import now_ms
from batchline.errors import InvalidRequest
from batchline.keys import Keys
from batchline.quotas import Limits
from batchline.redis_client import text
from batchline.requests import check_id

#: What a tenant's reply_to patterns may start with: the target kinds of batchline/requests.py
REPLY_KINDS = ("redis-stream:", "celery:", "https://", "http://", "sqs:")


class UnknownTenant(InvalidRequest):
    """No tenant of that name."""


@dataclass(frozen=True)
class Tenant:
    """One tenant's settings. `reply_to` holds fnmatch patterns over a whole target
    (`redis-stream:extract-*`); none means it may name no reply target of its own."""

    name: str
    max_queued: int | None = None
    max_queued_bytes: int | None = None
    monthly_budget_usd: float | None = None
    #: real-time spend per month (UTC) for deadline requests; past it they wait for their batch (docs/deadlines.md)
    realtime_budget_usd: float | None = None
    weight: int = 1
    reply_to: tuple[str, ...] = ()
    created_at: int = 0
    revoked: bool = False
    keys: dict[str, int] = field(default_factory=dict)  # key digest -> expires at (ms; 0 = never)

    @property
    def limits(self) -> Limits:
        return Limits(self.max_queued, self.max_queued_bytes, self.monthly_budget_usd)

    def allows_reply_to(self, target: str, keys: Keys) -> bool:
        if target.startswith(f"redis-stream:{keys.gateway_stream_prefix}"):
            return False  # the gateway's own result streams are never a tenant's to name
        if target.startswith(("https://", "http://")):
            return any(url_matches(target, p) for p in self.reply_to if p.startswith(("https://", "http://")))
        return any(fnmatch.fnmatchcase(target, pattern) for pattern in self.reply_to)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Tenant:
        data: dict[str, Any] = json.loads(raw)
        data["reply_to"] = tuple(data.get("reply_to") or ())
        return cls(**data)

    def public(self) -> dict[str, Any]:
        """What `tenants list` shows: everything but the key digests (only short fingerprints)."""
        out = asdict(self)
        now = now_ms()
        out["keys"] = [
            {"fingerprint": apikeys.fingerprint(d), "expires_at_ms": exp or None}
            for d, exp in self.keys.items()
            if exp == 0 or exp > now
        ]
        out["reply_to"] = list(self.reply_to)
        return out


def url_matches(url: str, pattern: str) -> bool:
    """A webhook URL against a tenant's pattern, part by part: scheme exactly, host (with port) by
    fnmatch within the host alone (a `*` never reaches into the path), then the path and query."""
    try:
        u, p = urlsplit(url), urlsplit(pattern)
    except ValueError:
        return False
    if u.scheme != p.scheme or "@" in u.netloc:
        return False
    rest_u = u.path + (f"?{u.query}" if u.query else "")
    rest_p = p.path + (f"?{p.query}" if p.query else "")
    return fnmatch.fnmatchcase(u.netloc.lower(), p.netloc.lower()) and fnmatch.fnmatchcase(rest_u or "/", rest_p or "/")


def check_limits(tenant: Tenant) -> None:
    for name in ("max_queued", "max_queued_bytes", "monthly_budget_usd", "realtime_budget_usd"):
        value = getattr(tenant, name)
        if value is not None and value < 0:
            raise InvalidRequest(name, f"must be >= 0, got {value}")
    if not 1 <= tenant.weight <= 1000:
        raise InvalidRequest("weight", f"must be between 1 and 1000, got {tenant.weight}")
    for pattern in tenant.reply_to:
        if not pattern.startswith(REPLY_KINDS):
            raise InvalidRequest("reply_to", f"{pattern!r} must start with 'redis-stream:', 'celery:', 'https://', "
                                 "'http://' or 'sqs:'")
        if pattern.startswith(("https://", "http://")) and (pattern.count("/") < 3 or "@" in pattern):
            raise InvalidRequest("reply_to", f"{pattern!r}: a webhook pattern is scheme://HOST[:PORT]/PATH "
                                 "(HOST and PATH may hold fnmatch wildcards; no userinfo)")


class WebhookSecrets:
    """Tenants' webhook signing secrets (`Keys.webhook_secrets`). Unlike API keys they are kept as
    they are (a signature needs the secret itself); they are shown once, when made, and never logged.
    A rotation keeps the previous ones signing for a grace period: receivers see both signatures."""

    def __init__(self, client: redis.Redis, keys: Keys, grace_seconds: float = 86400.0) -> None:
        self.redis, self.keys, self.grace_ms = client, keys, int(grace_seconds * 1000)

    def _stored(self, tenant: str) -> list[dict[str, Any]]:
        raw = self.redis.hget(self.keys.webhook_secrets, tenant)
        return list(json.loads(raw)) if raw else []

    def live(self, tenant: str, now: int | None = None) -> list[str]:
        """The secrets that sign now, newest first (empty: the tenant has none)."""
        at = now_ms() if now is None else now
        return [e["secret"] for e in self._stored(tenant) if not e["expires_ms"] or e["expires_ms"] > at]

    def rotate(self, tenant: str, grace_seconds: float | None = None) -> str:
        """A new secret that signs from now on; the live ones keep signing for the grace period."""
        grace = self.grace_ms if grace_seconds is None else int(grace_seconds * 1000)
        now = now_ms()
        kept = [] if grace == 0 else [
            {"secret": e["secret"], "expires_ms": min(e["expires_ms"] or now + grace, now + grace)}
            for e in self._stored(tenant) if not e["expires_ms"] or e["expires_ms"] > now
        ]
        secret = webhooks.new_secret()
        self.redis.hset(self.keys.webhook_secrets, tenant, json.dumps([{"secret": secret, "expires_ms": 0}, *kept]))
        return secret

    def fingerprints(self, tenant: str) -> list[dict[str, Any]]:
        """What `tenants list` may show of them: short fingerprints and expiries, never a secret."""
        now = now_ms()
        return [
            {"fingerprint": apikeys.fingerprint(apikeys.key_hash(e["secret"])), "expires_at_ms": e["expires_ms"] or 0}
            for e in self._stored(tenant)
            if not e["expires_ms"] or e["expires_ms"] > now
        ]


class TenantStore:
    """Tenants and their keys in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, grace_seconds: float = 86400.0) -> None:
        self.redis, self.keys, self.grace_ms = client, keys, int(grace_seconds * 1000)

    def get(self, name: str) -> Tenant:
        raw = self.redis.hget(self.keys.tenants, name)
        if raw is None:
            raise UnknownTenant("tenant", f"{name!r} is not a tenant")
        return Tenant.from_json(raw)

    def all(self) -> list[Tenant]:
        return sorted((Tenant.from_json(v) for v in self.redis.hvals(self.keys.tenants)), key=lambda t: t.name)

    def add(self, tenant: Tenant) -> str:
        """Create the tenant; returns its first API key (the only time it is shown)."""
        check_id("tenant", tenant.name)
        check_limits(tenant)
        key = apikeys.new_key()
        digest = apikeys.key_hash(key)
        tenant = replace(tenant, created_at=now_ms(), keys={digest: 0}, revoked=False)
        if not self.redis.hsetnx(self.keys.tenants, tenant.name, tenant.to_json()):
            raise InvalidRequest("tenant", f"{tenant.name!r} already exists")
        self.redis.hset(self.keys.api_keys, digest, json.dumps({"tenant": tenant.name, "expires_ms": 0}))
        return key

    def set(self, name: str, **changes: Any) -> Tenant:
        tenant = replace(self.get(name), **changes)
        check_limits(tenant)
        self.redis.hset(self.keys.tenants, name, tenant.to_json())
        return tenant

    def rotate(self, name: str, grace_seconds: float | None = None) -> str:
        """A new key; the current ones keep working for the grace period, then stop."""
        tenant = self.get(name)
        grace = self.grace_ms if grace_seconds is None else int(grace_seconds * 1000)
        now = now_ms()
        key = apikeys.new_key()
        digest = apikeys.key_hash(key)
        kept = {
            d: (exp if exp and exp < now + grace else now + grace)
            for d, exp in tenant.keys.items()
            if exp == 0 or exp > now
        }
        if grace == 0:
            kept = {}
        pipe = self.redis.pipeline(transaction=True)
        for old in set(tenant.keys) - set(kept):
            pipe.hdel(self.keys.api_keys, old)
        for old, exp in kept.items():
            pipe.hset(self.keys.api_keys, old, json.dumps({"tenant": name, "expires_ms": exp}))
        pipe.hset(self.keys.api_keys, digest, json.dumps({"tenant": name, "expires_ms": 0}))
        pipe.hset(self.keys.tenants, name, replace(tenant, keys={**kept, digest: 0}, revoked=False).to_json())
        pipe.execute()
        return key

    def revoke(self, name: str) -> Tenant:
        """Every key of the tenant stops working at once; its records stay."""
        tenant = self.get(name)
        pipe = self.redis.pipeline(transaction=True)
        for digest in tenant.keys:
            pipe.hdel(self.keys.api_keys, digest)
        revoked = replace(tenant, keys={}, revoked=True)
        pipe.hset(self.keys.tenants, name, revoked.to_json())
        pipe.execute()
        return revoked

    def authenticate(self, key: str) -> Tenant | None:
        """The tenant of a key, or None for an unknown, expired or revoked one."""
        digest = apikeys.key_hash(key)
        raw = self.redis.hget(self.keys.api_keys, digest)
        if raw is None:
            return None
        entry = json.loads(text(raw) or "{}")
        expires = int(entry.get("expires_ms") or 0)
        if expires and expires <= now_ms():
            return None
        stored = self.redis.hget(self.keys.tenants, entry["tenant"])
        if stored is None:
            return None
        tenant = Tenant.from_json(stored)
        if tenant.revoked:
            return None
        # the lookup went by digest; confirm against the tenant's own list in constant time
        if not any(apikeys.same_hash(digest, d) for d in tenant.keys):
            return None
        return tenant
