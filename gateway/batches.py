"""Client batches of the Anthropic-compatible API, kept in Redis beside batchline's own records.

A client batch is a hash (tenant, size, times), a map from each request's index to the caller's
`custom_id`, and a result stream. Each request becomes a batchline request of the tenant with the
custom_id `g{hex}_{index}` (unique per client batch, as the API's are) and that stream as its reply
target, so the result workers append every final outcome to it exactly once (deliver.lua). Counts,
the end of the batch and the results file are read from the stream.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterable, Iterator
from typing import Any, cast

import orjson

from batchline.clock import iso, now_ms
from batchline.errors import InvalidRequest, NotReplicated
from batchline.keys import request_id
from batchline.producers.claims import Claims
from batchline.producers.producer import Producer
from batchline.redis_client import text, text_map
from batchline.requests import EncodedRequest
from batchline.tenants import Tenant

from . import errors

ID_RE = re.compile(r"msgbatch_[0-9a-f]{24}")
OUTCOMES = ("succeeded", "errored", "canceled", "expired")
MAX_BATCH_AGE_MS = 29 * 86400 * 1000  # kept this long at least, before the records' own TTL starts
CHUNK = 1000
COUNT_CHUNK = 5000


def _texts(raw: Any) -> list[str]:
    return [text(r) or "" for r in cast(list[bytes], raw)]


def new_id() -> str:
    return "msgbatch_" + secrets.token_hex(12)


def prefix_of(gid: str) -> str:
    """The custom_id prefix of a client batch's requests inside batchline."""
    return f"g{gid.removeprefix('msgbatch_')}_"


class Batches:
    """Create, read, list, cancel, delete client batches and stream their results, for one tenant at a time."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.redis = producer.redis
        self.keys = producer.keys
        self.settings = producer.settings
        self.scripts = producer.scripts
        self._ttl_ms = MAX_BATCH_AGE_MS

    # -- create ---------------------------------------------------------------------------------

    def encode(
        self,
        tenant: Tenant,
        gid: str,
        requests: Iterable[tuple[str, dict[str, Any]]],
        betas: list[str] | None = None,
        claims: Claims | None = None,
    ) -> tuple[list[str], list[EncodedRequest]]:
        """The callers' custom_ids and the client batch's requests checked and encoded once, as they will
        be stored (their sizes are what the quota weighs); InvalidRequest names the field (e.g.
        `requests.3.params...`). `requests` may be an iterator: each parsed request is let go once
        encoded. With `claims`, each large request's PUT starts at once and only its key is kept (an
        object PUT for a batch then refused is left to the lifecycle rule, as at any intake)."""
        prefix, reply_to = prefix_of(gid), f"redis-stream:{self.keys.gateway_results(gid)}"
        custom_ids, encoded = [], []
        for i, (cid, params) in enumerate(requests):
            try:
                one = self.producer.encode_request(f"{prefix}{i}", params, tenant.name, reply_to, None, betas)
            except InvalidRequest as exc:
                raise InvalidRequest(f"requests.{i}.{exc.field}", exc.rule) from None
            encoded.append(one if claims is None else self.producer.claimed(claims, one))
            custom_ids.append(cid)
        return custom_ids, encoded

    def create(
        self,
        tenant: Tenant,
        gid: str,
        custom_ids: list[str],
        encoded: list[EncodedRequest],
        claims: Claims | None = None,
    ) -> dict[str, str]:
        """Store client batch `gid` (a `new_id`) of `encoded` requests (`claims`: the PUTs `encode`
        started, which each chunk's intake waits for), the callers' `custom_ids` beside."""
        k, now = self.keys, now_ms()
        meta_key, cids_key, stream = k.gateway_batch(gid), k.gateway_custom_ids(gid), k.gateway_results(gid)
        ttl = (self._ttl_ms + self.settings.record_ttl_seconds * 1000) // 1000
        pipe = self.redis.pipeline(transaction=False)
        expires = now + 86400 * 1000
        pipe.hset(
            meta_key,
            mapping={
                "tenant": tenant.name,
                "n": len(custom_ids),
                "created_at": now,
                "expires_at": expires,
                "intake": "open",
            },
        )
        pipe.xadd(stream, {"marker": "created"})  # the stream exists from now on, so its TTL holds
        for i in range(0, len(custom_ids), 5000):
            pipe.hset(cids_key, mapping={str(j): cid for j, cid in enumerate(custom_ids[i : i + 5000], i)})
        for key in (meta_key, cids_key, stream):
            pipe.expire(key, ttl)
        pipe.execute()
        try:
            report = self.producer.submit_encoded(encoded, claims=claims)
        except BaseException:
            self._abandon(tenant, gid, len(custom_ids))
            raise
        if report.rejected:  # validated before; only a race with another writer could get here
            self._abandon(tenant, gid, len(custom_ids))
            r = report.rejected[0]
            raise errors.ApiError(400, f"requests.{r.index}.{r.field}: {r.reason}")
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(meta_key, "intake", "done")
        pipe.zadd(k.gateway_tenant_batches(tenant.name), {gid: now})
        pipe.execute()
        return self._meta(tenant, gid)

    def _abandon(self, tenant: Tenant, gid: str, n: int) -> None:
        prefix = prefix_of(gid)
        rids = [request_id(tenant.name, f"{prefix}{i}") for i in range(n)]
        for i in range(0, n, CHUNK):
            # applied on the primary even when not yet replicated: go on with the rest of the batch
            with contextlib.suppress(NotReplicated):
                self.producer.cancel_ids(rids[i : i + CHUNK])
        self.redis.delete(
            self.keys.gateway_batch(gid), self.keys.gateway_custom_ids(gid), self.keys.gateway_results(gid)
        )

    # -- read -----------------------------------------------------------------------------------

    def _meta(self, tenant: Tenant, gid: str) -> dict[str, str]:
        """The batch's hash; another tenant's batch, or one never made or deleted, is not found (404)."""
        if not ID_RE.fullmatch(gid):
            raise errors.not_found(f"message batch {gid[:80]!r}")
        meta = text_map(self.redis.hgetall(self.keys.gateway_batch(gid)))
        if meta.get("tenant") != tenant.name or meta.get("intake") != "done":
            raise errors.not_found(f"message batch {gid!r}")
        return meta

    def refresh(self, tenant: Tenant, gid: str) -> dict[str, str]:
        """Count the outcomes that arrived since the last look, then read the batch."""
        self._meta(tenant, gid)
        while True:
            read, _counted, _n = self.scripts.gateway_count(
                gid, tenant.name, prefix_of(gid), COUNT_CHUNK, now_ms(), self.settings.record_ttl_seconds
            )
            if read < COUNT_CHUNK:
                break
        return self._meta(tenant, gid)

    def view(self, gid: str, meta: dict[str, str], base_url: str) -> dict[str, Any]:
        """The API's `MessageBatch` object."""
        counts = {o: int(meta.get(f"c:{o}") or 0) for o in OUTCOMES}
        n = int(meta["n"])
        ended = bool(meta.get("ended_at"))
        status = "ended" if ended else "canceling" if meta.get("cancel_initiated_at") else "in_progress"
        return {
            "id": gid,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {"processing": max(0, n - sum(counts.values())), **counts},
            "created_at": iso(meta["created_at"]),
            "expires_at": iso(meta["expires_at"]),
            "ended_at": iso(meta.get("ended_at")),
            "cancel_initiated_at": iso(meta.get("cancel_initiated_at")),
            "archived_at": None,
            "results_url": f"{base_url}/v1/messages/batches/{gid}/results" if ended else None,
        }

    def list(self, tenant: Tenant, limit: int, after_id: str | None, before_id: str | None) -> tuple[list[str], bool]:
        """The tenant's batch ids newest first, a page after (older than) or before (newer than) an id."""
        key = self.keys.gateway_tenant_batches(tenant.name)
        rank = 0
        if after_id is not None or before_id is not None:
            anchor = after_id if after_id is not None else before_id
            found = self.redis.zrevrank(key, anchor or "")
            if found is None:
                raise errors.ApiError(400, f"{'after_id' if after_id else 'before_id'}: {anchor!r} is not a batch here")
            rank = int(cast(int, found))
        if before_id is not None:
            start = max(0, rank - limit)
            ids = _texts(self.redis.zrevrange(key, start, rank - 1)) if rank else []
            return ids, start > 0
        start = 0 if after_id is None else rank + 1
        ids = _texts(self.redis.zrevrange(key, start, start + limit))
        return ids[:limit], len(ids) > limit

    def forget(self, tenant: Tenant, gid: str) -> None:
        """Drop a listed id whose records expired."""
        self.redis.zrem(self.keys.gateway_tenant_batches(tenant.name), gid)

    # -- cancel, delete ---------------------------------------------------------------------------

    def cancel(self, tenant: Tenant, gid: str) -> dict[str, str]:
        """Unfinished requests end `canceled`: queued ones leave the queue now and a worker's sweep delivers
        their `canceled` (seconds); those inside a provider batch when it returns."""
        meta = self.refresh(tenant, gid)
        if meta.get("ended_at"):
            return meta
        k = self.keys
        self.redis.hsetnx(k.gateway_batch(gid), "cancel_initiated_at", now_ms())
        prefix, n = prefix_of(gid), int(meta["n"])
        for start in range(0, n, CHUNK):
            cids = [f"{prefix}{i}" for i in range(start, min(n, start + CHUNK))]
            rids = [request_id(tenant.name, c) for c in cids]
            self.producer.cancel_ids(rids)
        return self.refresh(tenant, gid)

    def delete(self, tenant: Tenant, gid: str) -> None:
        meta = self.refresh(tenant, gid)
        if not meta.get("ended_at"):
            raise errors.ApiError(400, f"message batch {gid!r} has not ended; cancel it first, then delete it")
        k = self.keys
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(k.gateway_batch(gid), k.gateway_custom_ids(gid), k.gateway_results(gid))
        pipe.zrem(k.gateway_tenant_batches(tenant.name), gid)
        pipe.execute()

    # -- results ----------------------------------------------------------------------------------

    def results(self, tenant: Tenant, gid: str) -> Iterator[bytes]:
        """The results file: one JSON line per request, the caller's custom_id and the provider's result
        object as it came. Read from the stream CHUNK entries at a time, so memory stays flat."""
        meta = self.refresh(tenant, gid)
        if not meta.get("ended_at"):
            raise errors.ApiError(
                400,
                f"message batch {gid!r} is still {self.view(gid, meta, '')['processing_status']}"
                "; results are available once it has ended",
            )
        return self._lines(tenant, gid)

    def _lines(self, tenant: Tenant, gid: str) -> Iterator[bytes]:
        k, prefix = self.keys, prefix_of(gid)
        stream, cids_key = k.gateway_results(gid), k.gateway_custom_ids(gid)
        plen, tenant_b = len(prefix), tenant.name.encode()
        cursor = "-"
        while True:
            entries = cast(list[tuple[bytes, dict[bytes, bytes]]], self.redis.xrange(stream, cursor, "+", count=CHUNK))
            if not entries:
                return
            cursor = "(" + (text(entries[-1][0]) or "")
            picked: list[tuple[str, bytes]] = []
            for _eid, f in entries:
                cid = text(f.get(b"custom_id"))
                if cid and f.get(b"tenant") == tenant_b and cid.startswith(prefix):
                    picked.append((cid[plen:], f.get(b"result") or b"null"))
            if picked:
                caller_ids = self.redis.hmget(cids_key, [i for i, _ in picked])
                yield b"".join(
                    b'{"custom_id":' + orjson.dumps(text(c)) + b',"result":' + result + b"}\n"
                    for c, (_i, result) in zip(caller_ids, picked, strict=True)
                    if c is not None
                )
            if len(entries) < CHUNK:
                return
