"""The producer: what upstream services call to hand requests to batchline.

A request becomes a Redis record plus an entry in the pending list, written by one Lua script
per chunk (no Celery task per request). Idempotent per (tenant, custom_id).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import redis

from batchline import objects, quotas
from batchline.clock import iso, now_ms
from batchline.config.settings import Settings
from batchline.errors import Backpressure, Conflict, InvalidRequest
from batchline.keys import Keys, request_id
from batchline.redis_client import connect, text, texts
from batchline.requests import EncodedRequest, check_id, encode
from batchline.scripts import Scripts
from batchline.status import read_status
from batchline.webhooks import WebhookPolicy

from .claims import Claims

ACCEPTED, DUPLICATE, CONFLICT = 1, 0, 2
BACKPRESSURE = "backpressure|"  # intake.lua's code when admission control refuses a request


def backpressure(code: str) -> Backpressure:
    """intake.lua's refusal: admission control's `Backpressure`, or `QuotaExceeded` by a tenant's quota."""
    _, limit, current, maximum, tenant = code.split("|", 4)
    if limit in quotas.QUOTAS:
        return quotas.refused(limit, tenant, int(current), int(maximum))
    return Backpressure(limit, int(current), int(maximum), tenant or None)
MAX_CHUNK = 5000  # requests per Lua call: bounded so Redis is never blocked long
# params bytes per chunk: with documents, a chunk goes out (PUT to the object store, in parallel) while
# the next is encoded, and a producer holds a few chunks of documents at most, not a whole file
MAX_CHUNK_BYTES = 16_000_000
CONFLICT_RULE = "conflict: already submitted with other params"


def _shown_id(cid: Any) -> str | None:
    """A refused item's custom_id as a report may show it: a short, printable string, else None
    (the rule already quotes a bad id, cut)."""
    if not isinstance(cid, str) or len(cid) > 100 or not cid.isprintable():
        return None
    try:
        cid.encode()
    except UnicodeEncodeError:  # a lone surrogate from a "\ud800" escape
        return None
    return cid


@dataclass(frozen=True, slots=True)
class Rejection:
    """One request refused at intake: its position in the input, its id, and why."""

    index: int
    custom_id: str | None
    field: str
    reason: str


@dataclass
class SubmitReport:
    """What `submit_many` did: counts, and each rejection with its reason."""

    accepted: int = 0
    duplicate: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    #: set when admission control refused an item: nothing from it on was stored (`submit_many` raises it)
    backpressure: Backpressure | None = None

    @property
    def total(self) -> int:
        return self.accepted + self.duplicate + len(self.rejected)


class Producer:
    """Submit requests to batchline and ask for their status."""

    def __init__(self, client: redis.Redis, settings: Settings, store: objects.ObjectStore | None = None) -> None:
        self.redis = client
        self.settings = settings
        self._store_given = store  # None: built from settings (BATCHLINE_S3_BUCKET) at the first large request
        self.keys = Keys(settings.key_prefix)
        self.scripts = Scripts(client, self.keys, settings.redis_min_replicas, settings.redis_wait_timeout_ms)
        # shared with the gateway, which drives the same records
        self._record_prefix = self.keys.request("")
        self.quotas = quotas.Registry(client, self.keys)  # registered tenants' quotas, enforced at intake
        self.webhook_policy = WebhookPolicy.of(settings)  # which webhook URLs intake takes (SSRF)
        self._puts: ThreadPoolExecutor | None = None  # the claim check's PUT threads, made at the first
        self._puts_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, store: objects.ObjectStore | None = None) -> Producer:
        return cls(connect(settings.redis_url, settings.key_prefix), settings, store)

    @classmethod
    def from_env(cls) -> Producer:
        return cls.from_settings(Settings.from_env())

    def close(self) -> None:
        if self._puts is not None:
            self._puts.shutdown(wait=True, cancel_futures=True)
        self.redis.close()

    def _put_pool(self) -> ThreadPoolExecutor:
        with self._puts_lock:
            if self._puts is None:
                self._puts = ThreadPoolExecutor(self.settings.s3_put_threads, thread_name_prefix="batchline-params")
            return self._puts

    def claims(self) -> Claims:
        """A new set of claim-check PUTs for one call (`claimed`, `submit_encoded`)."""
        return Claims(lambda: self.store, self._put_pool, self.settings)

    def claimed(self, claims: Claims, encoded: EncodedRequest) -> EncodedRequest:
        """`encoded` as intake stores it: a large request's PUT started and its params replaced by the key."""
        return claims.start(encoded) if self._large(encoded) else encoded

    @property
    def store(self) -> objects.ObjectStore | None:
        """Where params over `BATCHLINE_INLINE_MAX_BYTES` are kept (None: no store configured)."""
        if self._store_given is None and self.settings.s3_bucket:
            self._store_given = objects.from_settings(self.settings)
        return self._store_given

    def _large(self, r: EncodedRequest) -> bool:
        limit = self.settings.inline_max_bytes
        return 0 < limit < len(r.params_json) and not objects.is_ref(r.params_json)

    def encode_request(
        self, custom_id: Any, params: Any, tenant: Any, reply_to: Any, metadata: Any, betas: Any = None,
        deadline: Any = None, deadline_seconds: Any = None,
    ) -> EncodedRequest:
        """One request checked and encoded as intake.lua stores it; InvalidRequest names the field."""
        encoded = self._encode(custom_id, params, tenant, reply_to, metadata, betas, deadline, deadline_seconds)
        if self._large(encoded) and not self.settings.s3_bucket and self._store_given is None:
            raise InvalidRequest(
                "params", f"is {len(encoded.params_json)} bytes as JSON, over BATCHLINE_INLINE_MAX_BYTES="
                f"{self.settings.inline_max_bytes}, and no object store is configured to keep it: set "
                "BATCHLINE_S3_BUCKET (or raise BATCHLINE_INLINE_MAX_BYTES; 0 keeps every request inline)")
        return encoded

    def _encode(
        self, custom_id: Any, params: Any, tenant: Any, reply_to: Any, metadata: Any, betas: Any,
        deadline: Any = None, deadline_seconds: Any = None,
    ) -> EncodedRequest:
        return encode(
            custom_id,
            params,
            tenant=self.settings.default_tenant if tenant is None else tenant,
            reply_to=reply_to,
            metadata=metadata,
            betas=betas,
            max_bytes=self.settings.max_batch_bytes,
            key_prefix=self.settings.key_prefix,
            stream_prefix=self.settings.reply_stream_prefix,
            webhook_policy=self.webhook_policy,
            deadline=deadline,
            deadline_seconds=deadline_seconds,
            now_ms=now_ms(),
            min_deadline_seconds=self.settings.min_deadline_seconds,
        )

    def _claim_checked(self, chunk: list[EncodedRequest]) -> list[EncodedRequest]:
        """The chunk with each large request's params PUT to the object store and replaced by their
        key (`Claims`), before intake.lua runs. A store fault raises `RetryableError` naming the store;
        nothing of the chunk is in Redis then. (`submit_many` starts its PUTs earlier, as it encodes.)"""
        if not any(self._large(r) for r in chunk):
            return chunk
        if self.store is None:
            raise InvalidRequest("params", "over BATCHLINE_INLINE_MAX_BYTES and no object store configured: "
                                 "set BATCHLINE_S3_BUCKET")
        claims = self.claims()
        try:
            out = [claims.start(r) if self._large(r) else r for r in chunk]
            claims.wait(out)
        finally:
            claims.cancel()
        return out

    def _store(self, chunk: list[EncodedRequest]) -> list[int | str]:
        """One code per request (ACCEPTED, DUPLICATE, CONFLICT), or why its reply target is refused."""
        st = self.settings
        chunk = self._claim_checked(chunk)
        tenants = sorted({r.tenant for r in chunk})
        admission: list[Any] = [st.max_queued_requests, st.max_queued_bytes, st.intake_memory_percent, len(tenants)]
        over_budget: dict[str, str] = {}  # tenant -> its refusal, in intake.lua's words (cents)
        for tenant in tenants:
            quota, spent = self.quotas.get(tenant)
            over = quota is not None and quota.monthly_budget_usd is not None and spent >= quota.monthly_budget_usd
            if over and quota is not None and quota.monthly_budget_usd is not None:
                over_budget[tenant] = (f"{BACKPRESSURE}monthly_budget_usd|{round(spent * 100)}|"
                                       f"{round(quota.monthly_budget_usd * 100)}|{tenant}")
            admission += (tenant, *quotas.intake_limits(st.limits_of(tenant), quota, over))
        try:
            codes = self.scripts.intake(chunk, now_ms(), admission)
        except redis.exceptions.OutOfMemoryError:  # past maxmemory already: the same answer, from Redis
            info = self.redis.info("memory")
            raise Backpressure("memory", int(info["used_memory"]), int(info["maxmemory"])) from None
        if over_budget:
            marker = f"{BACKPRESSURE}monthly_budget_usd|"
            # by the tenant the code names: from the first refusal on, the chunk's later requests (of any
            # tenant) carry that refusal's code
            codes = [over_budget.get(c.rsplit("|", 1)[-1], c) if isinstance(c, str) and c.startswith(marker) else c
                     for c in codes]
        return codes

    def submit(
        self,
        custom_id: str,
        params: Mapping[str, Any],
        *,
        tenant: str | None = None,
        reply_to: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        betas: Sequence[str] | None = None,
        deadline: str | None = None,
        deadline_seconds: float | None = None,
    ) -> str:
        """Store one request. Returns "accepted" or "duplicate"; raises `InvalidRequest` or `Conflict`.
        `betas` (beta names) go out as the `anthropic-beta` header of the batch that carries it: requests
        are only batched with requests of the same beta set. `deadline` (RFC 3339) or `deadline_seconds`
        (from now): when it must be answered by; real-time when a batch would be too late (docs/deadlines.md)."""
        encoded = self.encode_request(custom_id, params, tenant, reply_to, metadata, betas, deadline,
                                      deadline_seconds)
        code = self._store([encoded])[0]
        if isinstance(code, str):
            if code.startswith(BACKPRESSURE):
                raise backpressure(code)
            raise InvalidRequest("reply_to", code)
        if code == CONFLICT:
            raise Conflict("custom_id", f"{custom_id!r} already submitted by {encoded.tenant!r} with other params")
        return "accepted" if code == ACCEPTED else "duplicate"

    def submit_many(
        self,
        items: Iterable[Mapping[str, Any]],
        *,
        tenant: str | None = None,
        reply_to: str | None = None,
        chunk_size: int = 1000,
        on_progress: Callable[[int], None] | None = None,
    ) -> SubmitReport:
        """Store many requests, one Lua call per chunk. Each item is a mapping with `custom_id`,
        `params` and optionally `tenant`, `reply_to`, `metadata` (which override the arguments), `betas`
        and `deadline` or `deadline_seconds`.
        A bad item is reported and skipped; the good ones are stored. When admission control refuses
        an item, raises `Backpressure` with `.report` (what was stored before it) and `.index` (the
        first item not stored; nothing after it was stored either)."""
        if not 1 <= chunk_size <= MAX_CHUNK:
            raise ValueError(f"chunk_size={chunk_size}: must be between 1 and {MAX_CHUNK}")
        report, claims = SubmitReport(), self.claims()
        try:
            return self._write(self._encoded_chunks(items, tenant, reply_to, chunk_size, report, claims), report,
                               on_progress, claims)
        finally:
            claims.cancel()

    def submit_encoded(
        self, requests: Sequence[EncodedRequest], chunk_size: int = 1000, claims: Claims | None = None
    ) -> SubmitReport:
        """`submit_many` of requests already checked and encoded (`encode_request`, then `claimed` with
        `claims`, whose PUTs each chunk waits for): the gateway sizes a client batch for its quota from
        them, then stores the same bytes."""
        chunks = (
            (list(requests[i : i + chunk_size]), list(range(i, min(i + chunk_size, len(requests)))))
            for i in range(0, len(requests), chunk_size)
        )
        return self._write(chunks, SubmitReport(), None, claims)

    def _write(
        self,
        chunks: Iterable[tuple[list[EncodedRequest], list[int]]],
        report: SubmitReport,
        on_progress: Callable[[int], None] | None,
        claims: Claims | None,
    ) -> SubmitReport:
        # A sender thread writes one chunk while the next is validated and encoded here: Redis runs
        # the Lua script on its own core meanwhile, and the GIL is free during the socket wait.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchline-intake") as sender:
            writing: Future[None] | None = None
            for chunk, positions in chunks:
                if writing is not None:
                    writing.result()
                if report.backpressure is not None:
                    break
                writing = sender.submit(self._flush, chunk, positions, report, on_progress, claims)
            if writing is not None:
                writing.result()
        report.rejected.sort(key=lambda r: r.index)
        if report.backpressure is not None:
            stop = report.backpressure.index or 0
            report.rejected = [r for r in report.rejected if r.index < stop]  # the rest was never looked at
            report.backpressure.report = report
            raise report.backpressure
        return report

    def _encoded_chunks(
        self, items: Iterable[Mapping[str, Any]], tenant: str | None, reply_to: str | None, chunk_size: int,
        report: SubmitReport, claims: Claims | None = None,
    ) -> Iterator[tuple[list[EncodedRequest], list[int]]]:
        """Chunks of encoded requests; with `claims`, each large request's PUT starts as it is encoded."""
        chunk: list[EncodedRequest] = []
        positions: list[int] = []
        held = 0
        for index, item in enumerate(items):
            try:
                if not isinstance(item, Mapping):
                    raise InvalidRequest("request", f"must be an object, got {type(item).__name__}")
                # a field set to null is not set: the call's default applies
                item_tenant, item_reply_to = item.get("tenant"), item.get("reply_to")
                encoded = self.encode_request(
                    item.get("custom_id"),
                    item.get("params"),
                    tenant if item_tenant is None else item_tenant,
                    reply_to if item_reply_to is None else item_reply_to,
                    item.get("metadata"),
                    item.get("betas"),
                    item.get("deadline"),
                    item.get("deadline_seconds"),
                )
            except InvalidRequest as exc:
                cid = item.get("custom_id") if isinstance(item, Mapping) else None
                report.rejected.append(Rejection(index, _shown_id(cid), exc.field, exc.rule))
                continue
            if claims is not None:
                encoded = self.claimed(claims, encoded)
            chunk.append(encoded)
            positions.append(index)
            held += encoded.size  # the full params' bytes, also of one whose PUT is under way
            if len(chunk) >= chunk_size or held >= MAX_CHUNK_BYTES:
                yield chunk, positions
                chunk, positions, held = [], [], 0
        if chunk:
            yield chunk, positions

    def check_many(
        self, items: Iterable[Mapping[str, Any]], *, tenant: str | None = None, reply_to: str | None = None
    ) -> tuple[SubmitReport, list[EncodedRequest]]:
        """What `submit_many` would do with `items`, storing nothing: the same checks, and the same
        duplicate / conflict answers (read from Redis, and within the input). Returns the report and
        the requests that would be accepted."""
        report = SubmitReport()
        accepted: list[EncodedRequest] = []
        seen: dict[str, str] = {}
        for chunk, positions in self._encoded_chunks(items, tenant, reply_to, 1000, report):
            pipe = self.redis.pipeline(transaction=False)
            for r in chunk:
                pipe.hget(self._record_prefix + r.rid, "d")
            for r, index, stored in zip(chunk, positions, pipe.execute(), strict=True):
                digest = stored.decode() if stored else seen.get(r.rid)
                if digest is None:
                    seen[r.rid] = r.digest
                    report.accepted += 1
                    accepted.append(r)
                elif digest == r.digest:
                    report.duplicate += 1
                else:
                    report.rejected.append(Rejection(index, r.custom_id, "custom_id", CONFLICT_RULE))
        report.rejected.sort(key=lambda r: r.index)
        return report, accepted

    def _flush(
        self,
        chunk: list[EncodedRequest],
        positions: list[int],
        report: SubmitReport,
        on_progress: Callable[[int], None] | None,
        claims: Claims | None = None,
    ) -> None:
        try:
            if claims is not None:
                claims.wait(chunk)
            codes = self._store(chunk)
        except Backpressure as exc:  # Redis itself is out of memory: none of this chunk was stored
            exc.index = positions[0]
            report.backpressure = exc
            return
        for encoded, index, code in zip(chunk, positions, codes, strict=True):
            if code == ACCEPTED:
                report.accepted += 1
            elif code == DUPLICATE:
                report.duplicate += 1
            elif isinstance(code, str) and code.startswith(BACKPRESSURE):
                if report.backpressure is None:
                    report.backpressure = backpressure(code)
                    report.backpressure.index = index
            elif isinstance(code, str):
                report.rejected.append(Rejection(index, encoded.custom_id, "reply_to", code))
            else:
                report.rejected.append(
                    Rejection(index, encoded.custom_id, "custom_id", CONFLICT_RULE)
                )
        if on_progress is not None:
            on_progress(len(chunk))

    def cancel(self, custom_id: str, tenant: str | None = None) -> str:
        """Cancel one request: 'removed' (it was still pending: it leaves the queue now and is reported
        canceled by a worker shortly), 'requested' (it is in a batch: it will be reported canceled, and
        the provider batch canceled once all its requests are), 'final' (already settled) or 'unknown'.
        Either way its caller gets exactly one delivery."""
        tenant = self.settings.default_tenant if tenant is None else tenant
        check_id("tenant", tenant)
        check_id("custom_id", custom_id)
        return self.cancel_ids([request_id(tenant, custom_id)])[0]

    def cancel_batch(self, batch_id: str) -> dict[str, int]:
        """Cancel every request of a batch (batchline's id or the provider's). Counts by result code."""
        k = self.keys
        bid = text(self.redis.hget(k.provider_index, batch_id)) or batch_id
        rids = texts(self.redis.lrange(k.batch_members(bid), 0, -1))
        if not rids:
            raise InvalidRequest("batch_id", f"{batch_id!r} is not a batch batchline knows")
        counts: dict[str, int] = {}
        for i in range(0, len(rids), 1000):
            for code in self.cancel_ids(rids[i : i + 1000]):
                counts[code] = counts.get(code, 0) + 1
        return counts

    def cancel_ids(self, rids: list[str]) -> list[str]:
        now = now_ms()
        entry = json.dumps({"event": "cancel_requested", "at": iso(now)}, separators=(",", ":"))
        return self.scripts.cancel(rids, now, self.settings.record_ttl_seconds, entry)

    def status(self, custom_id: str, tenant: str | None = None) -> dict[str, Any] | None:
        """The request's current state and details, or None if batchline does not know it."""
        tenant = self.settings.default_tenant if tenant is None else tenant
        check_id("tenant", tenant)
        check_id("custom_id", custom_id)
        return read_status(self.redis, self.keys, tenant, custom_id)
