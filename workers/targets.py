"""Reply targets at delivery: check a Celery target's queue key before sending, send each outcome
on its own (one target's failure is that request's alone), bound how often one request is sent,
and send undeliverable requests again once their target is fixed (`batchline redeliver`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from batchline import log
from batchline.clock import iso, now_ms
from batchline.errors import InvalidRequest
from batchline.keys import request_id
from batchline.redis_client import text, texts
from batchline.requests import ReplyTarget, check_reply_to
from batchline.workers.context import Context
from batchline.workers.sinks import CelerySend

logger = log.get("batchline.targets")

#: A request's Celery task is sent at most this many times (replays of a chunk that failed after the
#: send); past it the request is undeliverable instead of being sent again without end.
MAX_CELERY_SENDS = 5


def queue_error(kind: bytes | str, is_stream: bool | int, queue: str) -> str | None:
    """Why a Celery target's queue key cannot take a message (None when it can)."""
    kind = text(kind) or "none"
    if is_stream:
        return f"celery queue {queue}: the name is a reply stream"
    if kind not in ("none", "list"):
        return f"celery queue {queue}: the key holds a {kind}, not a Celery queue"
    return None


def send_all(
    ctx: Context, celery_send: CelerySend | None, sends: Sequence[tuple[int, str, ReplyTarget, dict[str, Any]]]
) -> list[tuple[int, str]]:
    """Send each outcome to its Celery target. Returns (index, error) of the sends that failed or were
    refused: the queue key is checked first, and a request already sent MAX_CELERY_SENDS times is not
    sent again."""
    if not sends:
        return []
    k = ctx.keys
    pipe = ctx.redis.pipeline(transaction=False)
    queues = sorted({target.key for _, _, target, _ in sends})
    for queue in queues:
        pipe.type(k.broker_prefix + queue)  # the queue's list (kombu's global_keyprefix in cluster mode)
        pipe.sismember(k.reply_streams, queue)
    for _, rid, _, _ in sends:  # counted before the send: a replay can never send more than the bound
        pipe.hincrby(k.request(rid), "ns", 1)
    out = pipe.execute()
    errors = {q: queue_error(out[2 * i], out[2 * i + 1], q) for i, q in enumerate(queues)}
    counts = out[2 * len(queues) :]
    failed: list[tuple[int, str]] = []
    for (index, _, target, payload), sent in zip(sends, counts, strict=True):
        error = errors[target.key]
        if error is None and int(sent) > MAX_CELERY_SENDS:
            error = f"celery:{target.name}: sent {MAX_CELERY_SENDS} times without being settled"
        if error is None and celery_send is None:
            error = "celery: reply targets need the Celery app (Context.celery_app)"
        if error is None and celery_send is not None:
            try:
                celery_send(target.name, target.queue, payload)
            except Exception as exc:
                error = f"celery:{target.name}@{target.queue}: {type(exc).__name__}: {str(exc)[:300]}"
        if error is not None:
            failed.append((index, error))
    return failed


@dataclass
class RedeliverReport:
    delivered: int = 0
    delivering: int = 0  # webhook and SQS targets: back in the outbox, sent by the delivery tasks
    gone: int = 0  # no longer undeliverable (redelivered already, or its record expired)
    failed: dict[str, str] = field(default_factory=dict)  # request id -> why its target still refuses it


def undeliverable_ids(ctx: Context, tenant: str | None = None, custom_id: str | None = None) -> list[str]:
    """Undeliverable requests, oldest first: all, one tenant's, or one request."""
    if custom_id is not None:
        return [request_id(tenant or ctx.settings.default_tenant, custom_id)]
    rids = texts(ctx.redis.zrange(ctx.keys.undeliverable, 0, -1))
    if tenant is None:
        return rids
    pipe = ctx.redis.pipeline(transaction=False)
    for rid in rids:
        pipe.hget(ctx.keys.request(rid), "t")
    return [rid for rid, t in zip(rids, pipe.execute(), strict=True) if text(t) == tenant]


def redeliver(ctx: Context, celery_send: CelerySend | None, rids: Sequence[str]) -> RedeliverReport:
    """Send undeliverable requests again (their target was fixed). A stream target is checked and
    appended to in `redeliver.lua`; a Celery target is checked and sent here, then marked delivered; a
    webhook or SQS target goes back to `delivering`, due now in the outbox."""
    k, report = ctx.keys, RedeliverReport()
    entry = json.dumps({"event": "redelivered", "at": iso(now_ms())}, separators=(",", ":"))
    for i in range(0, len(rids), 500):
        part = list(rids[i : i + 500])
        pipe = ctx.redis.pipeline(transaction=False)
        for rid in part:
            pipe.hmget(k.request(rid), "s", "rt", "c", "t", "o", "k", "b", "res", "q")
            pipe.hdel(k.request(rid), "ns")  # a fixed target gets its own bound of sends again
        recs = pipe.execute()[::2]
        modes: dict[str, str] = {}
        sends: list[tuple[int, str, ReplyTarget, dict[str, Any]]] = []
        for index, (rid, rec) in enumerate(zip(part, recs, strict=True)):
            state, reply_to, custom_id, tenant, outcome, s3_key, bid, result, queued_at = (text(v) for v in rec)
            if state != "undeliverable" or not reply_to:
                modes[rid] = "sent"  # redeliver.lua settles it (a target-less request has nothing to send)
                continue
            try:
                target = check_reply_to(reply_to, ctx.settings.key_prefix)
            except InvalidRequest as exc:
                modes[rid] = f"{reply_to}: {exc.rule}"
                continue
            if target.kind == "redis-stream":
                modes[rid] = "stream"
                continue
            if target.external:  # back into the outbox: the delivery tasks send it, with a fresh retry window
                modes[rid] = "outbox"
                continue
            modes[rid] = "sent"
            payload = {
                "custom_id": custom_id,
                "tenant": tenant,
                "outcome": outcome,
                "s3_key": s3_key or "",
                "batch_id": bid,
                "result": json.loads(result or "null"),
                "idempotency_key": f"{tenant}:{custom_id}:{queued_at}",
            }
            sends.append((index, rid, target, payload))
        for index, error in send_all(ctx, celery_send, sends):
            modes[part[index]] = error
        codes = ctx.scripts.redeliver(ctx.clock.now_ms(), entry, ctx.settings.reply_stream_maxlen,
                                      [(rid, modes[rid]) for rid in part])
        for rid, code in zip(part, codes, strict=True):
            if code == "delivered":
                report.delivered += 1
            elif code == "delivering":
                report.delivering += 1
            elif code == "gone":
                report.gone += 1
            else:
                report.failed[rid] = code
                logger.warning("request.still_undeliverable", request_id=rid, error=code)
    return report
