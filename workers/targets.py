"""Reply targets at delivery: check a Celery target's queue key before sending, send each outcome
on its own (one target's failure is that request's alone), bound how often one request is sent,
and send undeliverable requests again once their target is fixed (`batchline redeliver`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from batchline import log
from batchline.redis_client import text
from batchline.requests import ReplyTarget
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
        pipe.type(queue)
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
        if error is None:
            try:
                celery_send(target.name, target.queue, payload)
            except Exception as exc:
                error = f"celery:{target.name}@{target.queue}: {type(exc).__name__}: {str(exc)[:300]}"
        if error is not None:
            failed.append((index, error))
    return failed
