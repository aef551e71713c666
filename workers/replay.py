"""Replay stored results from S3 to any reply target, long after the provider deleted them
(`batchline replay`). Reads the per-request objects (`results/<tenant>/<custom_id>.json`), keeps
those the filters match, and sends each to the target named, straight from this process (not
through the outbox: the request's Redis record may be long gone).

A replay carries the request's original idempotency key (`tenant:custom_id:queued_at`) and a
`replay` marker (the replay's id): receivers can dedupe on the key, or tell a replay apart. The
ids a transport dedupes on (webhook-id, a FIFO queue's MessageDeduplicationId, a Celery task id)
are the key plus `:replay:<id>`, so a replay is not dropped as a duplicate of the first delivery.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from batchline.errors import InvalidRequest
from batchline.requests import ReplyTarget
from batchline.tenants import WebhookSecrets
from batchline.webhooks import WebhookPolicy, sign
from batchline.workers import sqs_sender
from batchline.workers.context import Context
from batchline.workers.delivery import body as delivery_body
from batchline.workers.sinks import CelerySend
from batchline.workers.webhook_sender import Verdict, post

READ_THREADS = 16
WEBHOOK_TRIES = 3  # a 429/5xx/timeout during a replay is tried again this often, then reported
FIELDS = ("custom_id", "tenant", "outcome", "s3_key", "batch_id")


def parse_time(name: str, text: str, end_of_day: bool = False) -> int:
    """`--since` / `--until`: YYYY-MM-DD (UTC; with `end_of_day` the whole day is included) or an ISO
    8601 time (naive: UTC). Milliseconds since the epoch."""
    try:
        if len(text) == 10:
            day = datetime.strptime(text, "%Y-%m-%d")
            start = calendar.timegm(day.timetuple()) * 1000
            return start + (86_400_000 if end_of_day else 0)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(name, f"{text[:40]!r} must be YYYY-MM-DD or an ISO 8601 time") from None
    if when.tzinfo is None:
        return calendar.timegm(when.timetuple()) * 1000 + when.microsecond // 1000
    return int(when.timestamp() * 1000)


def iso_ms(text: str | None) -> int | None:
    """The ms of an `iso()` string as the S3 objects carry them (2026-12-07T12:07:28.123Z)."""
    if not text:
        return None
    return parse_time("time", text)


@dataclass(frozen=True, slots=True)
class Filters:
    """Which stored results a replay sends: one tenant's, optionally one batch's (ours or the
    provider's id), delivered in [since, until), or one custom_id."""

    tenant: str
    batch: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    custom_id: str | None = None

    def keeps(self, obj: dict[str, Any]) -> bool:
        if obj.get("tenant") != self.tenant or (self.custom_id and obj.get("custom_id") != self.custom_id):
            return False
        if self.batch and self.batch not in (obj.get("batch_id"), obj.get("provider_batch_id")):
            return False
        at = iso_ms(obj.get("delivered_at"))
        if self.since_ms is not None and (at is None or at < self.since_ms):
            return False
        return not (self.until_ms is not None and (at is None or at >= self.until_ms))


@dataclass
class ReplayReport:
    replay_id: str
    listed: int = 0  # stored results of the tenant looked at
    matched: int = 0
    sent: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # custom_id -> why its send failed
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Replayed:
    """One stored result, as a replay sends it."""

    custom_id: str
    tenant: str
    idempotency_key: str
    fields: dict[str, Any]
    result_json: bytes

    @property
    def transport_id(self) -> str:
        return f"{self.idempotency_key}:replay:{self.fields['replay']}"

    def body(self) -> bytes:
        return delivery_body(self.fields, self.result_json)


def replayed(obj: dict[str, Any], replay_id: str) -> Replayed:
    queued = iso_ms(obj.get("queued_at"))
    key = f"{obj['tenant']}:{obj['custom_id']}:{queued if queued is not None else ''}"
    fields = {**{name: obj.get(name) or "" for name in FIELDS}, "idempotency_key": key, "replay": replay_id}
    result = (obj.get("provider_line") or {}).get("result")
    return Replayed(obj["custom_id"], obj["tenant"], key, fields, orjson.dumps(result))


def result_keys(ctx: Context, f: Filters) -> list[str]:
    s = ctx.settings
    prefix = f"{s.s3_prefix}/results/{f.tenant}/".lstrip("/")
    if f.custom_id:
        return [f"{prefix}{f.custom_id}.json"]
    keys: list[str] = []
    for page in ctx.s3.get_paginator("list_objects_v2").paginate(Bucket=s.s3_bucket, Prefix=prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def stored(ctx: Context, keys: Sequence[str], pool: ThreadPoolExecutor) -> Iterator[dict[str, Any] | None]:
    """Each key's object (None when it is missing), read in parallel, in order."""

    def get(key: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(ctx.s3.get_object(Bucket=ctx.settings.s3_bucket, Key=key)["Body"].read()))
        except ctx.s3.exceptions.NoSuchKey:
            return None

    yield from pool.map(get, keys)


Sender = Callable[[Sequence[Replayed]], dict[str, str]]  # custom_id -> error, for the ones that failed


def sender(ctx: Context, target: ReplyTarget, celery_send: CelerySend | None) -> Sender:
    """How this replay sends a chunk of results to `target`."""
    if target.kind == "webhook":
        return lambda items: _webhooks(ctx, target.name, items)
    if target.kind == "sqs":
        return lambda items: _sqs(ctx, target.name, items)
    if target.kind == "redis-stream":
        return lambda items: _stream(ctx, target.name, items)
    return lambda items: _celery(celery_send, target, items)


def replay(
    ctx: Context,
    f: Filters,
    target: ReplyTarget,
    *,
    dry_run: bool = False,
    celery_send: CelerySend | None = None,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    chunk: int = 100,
) -> ReplayReport:
    """Send the stored results `f` keeps to `target` (only count them with `dry_run`)."""
    report = ReplayReport(replay_id=f"replay-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}", dry_run=dry_run)
    keys = result_keys(ctx, f)
    if on_total:
        on_total(len(keys))
    send = sender(ctx, target, celery_send)
    batch: list[Replayed] = []

    def flush() -> None:
        if batch and not dry_run:
            failed = send(batch)
            report.failed.update(failed)
            report.sent += len(batch) - len(failed)
        batch.clear()

    with ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="replay") as pool:
        for obj in stored(ctx, keys, pool):
            report.listed += 1
            if obj is not None and f.keeps(obj):
                report.matched += 1
                batch.append(replayed(obj, report.replay_id))
                if len(batch) >= chunk:
                    flush()
            if on_progress:
                on_progress(1)
        flush()
    return report


def _webhooks(ctx: Context, url: str, items: Sequence[Replayed]) -> dict[str, str]:
    s = ctx.settings
    policy = WebhookPolicy.of(s)
    live = WebhookSecrets(ctx.redis, ctx.keys).live(items[0].tenant)
    if not live:
        why = f"tenant {items[0].tenant!r} has no webhook secret (batchline tenants webhook-secret {items[0].tenant})"
        return {i.custom_id: why for i in items}

    def one(item: Replayed) -> tuple[str, str | None]:
        data = item.body()
        for attempt in range(WEBHOOK_TRIES):
            headers = sign(live, item.transport_id, int(time.time()), data)
            result = post(ctx.http, url, policy, headers, data, s.webhook_timeout_seconds)
            if result.verdict is Verdict.DELIVERED:
                return item.custom_id, None
            if result.verdict is Verdict.NEVER or attempt == WEBHOOK_TRIES - 1:
                return item.custom_id, result.error
            time.sleep(min(10.0, result.retry_after or 0.5 * 2**attempt))
        return item.custom_id, "not sent"

    with ThreadPoolExecutor(max_workers=s.webhook_max_concurrency, thread_name_prefix="replay-hook") as pool:
        return {cid: err for cid, err in pool.map(one, items) if err is not None}


def _sqs(ctx: Context, name: str, items: Sequence[Replayed]) -> dict[str, str]:
    messages = [
        sqs_sender.Message(
            i.custom_id,
            i.tenant,
            i.transport_id,
            i.body(),
            sqs_sender.pointer_body(i.fields) if i.fields["s3_key"] else None,
        )
        for i in items
    ]
    return {
        cid: err
        for cid, verdict, err in sqs_sender.send(ctx.sqs, name, messages, ctx.sqs_urls)
        if verdict is not Verdict.DELIVERED
    }


def _stream(ctx: Context, stream: str, items: Sequence[Replayed]) -> dict[str, str]:
    pipe = ctx.redis.pipeline(transaction=False)
    for i in items:  # the fields of a stream entry (the result as a JSON string), plus the replay marker
        entry: dict[Any, Any] = {**i.fields, "result": i.result_json}
        pipe.xadd(stream, entry)
    failed = {}
    for i, out in zip(items, pipe.execute(raise_on_error=False), strict=True):
        if isinstance(out, Exception):
            failed[i.custom_id] = f"redis-stream:{stream}: {out}"
    return failed


def _celery(celery_send: CelerySend | None, target: ReplyTarget, items: Sequence[Replayed]) -> dict[str, str]:
    if celery_send is None:
        return {i.custom_id: "celery targets need the Celery app" for i in items}
    failed = {}
    for i in items:
        payload = {**i.fields, "result": json.loads(i.result_json)}
        try:
            celery_send(target.name, target.queue, payload)
        except Exception as exc:  # that request's failure alone; reported in the summary
            failed[i.custom_id] = f"celery:{target.name}: {type(exc).__name__}: {str(exc)[:200]}"
    return failed
