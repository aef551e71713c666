"""The poller (run by beat): update every open batch with as few API calls as possible and hand
each ended batch to the result workers exactly once (compare-and-set in `ended.lua`)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import anthropic
from anthropic.types.messages import MessageBatch

from batchline import log
from batchline.clock import now_ms
from batchline.redis_client import texts
from batchline.workers.context import Context
from batchline.workers.provider import Kind, classify

logger = log.get("batchline.poller")
MAX_LIST_PAGES = 5  # 5,000 newest batches; older open ones are retrieved one by one
MAX_RETRIEVES = 100


@dataclass
class PollReport:
    open: int = 0
    api_calls: int = 0
    ended: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # 404 long after create: handed off to be re-driven
    skipped: str | None = None


def open_batches(ctx: Context) -> tuple[dict[str, tuple[str, int]], list[tuple[str, str]]]:
    """provider id -> (batch id, submitted at ms) for every open batch, and the (batch id, provider id)
    of those whose every request was canceled by its caller and whose provider cancel is not sent."""
    k = ctx.keys
    bids = texts(ctx.redis.zrange(k.open, 0, -1))
    pipe = ctx.redis.pipeline(transaction=False)
    for bid in bids:
        pipe.hmget(k.batch(bid), "provider_id", "submitted_at", "n", "cancels", "cancel_sent")
    out, to_cancel = {}, []
    for bid, (pid, submitted_at, n, cancels, sent) in zip(bids, pipe.execute(), strict=True):
        if pid:
            out[pid.decode()] = (bid, int(submitted_at or 0))
            if not sent and int(cancels or 0) >= int(n or 0) > 0:
                to_cancel.append((bid, pid.decode()))
    return out, to_cancel


def cancel_provider_batches(ctx: Context, to_cancel: list[tuple[str, str]], report: PollReport) -> None:
    for bid, pid in to_cancel:
        if not ctx.redis.hsetnx(ctx.keys.batch(bid), "cancel_sent", now_ms()):
            continue
        report.api_calls += 1
        try:
            ctx.anthropic.messages.batches.cancel(pid)
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            ctx.redis.hdel(ctx.keys.batch(bid), "cancel_sent")  # try again next round
            logger.warning("batch.cancel_failed", batch_id=bid, provider_batch_id=pid, status=classify(exc).status)
            continue
        logger.info("batch.canceled", batch_id=bid, provider_batch_id=pid)


def _fetch(ctx: Context, want: dict[str, tuple[str, int]], report: PollReport) -> dict[str, MessageBatch]:
    seen: dict[str, MessageBatch] = {}
    page = ctx.anthropic.messages.batches.list(limit=1000)
    report.api_calls += 1
    while True:
        seen.update((b.id, b) for b in page.data if b.id in want)
        if len(seen) == len(want) or not page.has_more or report.api_calls >= MAX_LIST_PAGES:
            break
        page = ctx.anthropic.messages.batches.list(limit=1000, after_id=page.last_id or anthropic.omit)
        report.api_calls += 1
    grace_ms = int(ctx.settings.fresh_batch_grace_seconds * 1000)
    for pid in [p for p in want if p not in seen][:MAX_RETRIEVES]:
        report.api_calls += 1
        try:
            seen[pid] = ctx.anthropic.messages.batches.retrieve(pid)
        except anthropic.NotFoundError:
            # A 404 right after create is a known transient (docs/batches-api.md); later it is not.
            age = now_ms() - want[pid][1]
            bid = want[pid][0]
            if age < grace_ms:
                logger.info("batch.not_found", provider_batch_id=pid, age_ms=age, batch_id=bid)
            elif ctx.redis.hincrby(ctx.keys.batch(bid), "not_found", 1) >= GONE_AFTER_MISSES:
                mark_gone(ctx, bid, pid, report)
    return seen


GONE_AFTER_MISSES = 3


def mark_gone(ctx: Context, bid: str, pid: str, report: PollReport) -> None:
    """A batch the provider keeps answering 404 for (deleted in the Console, say): it ends with no
    results; the result worker re-drives its requests, and its in-flight budget is released."""
    k = ctx.keys
    ctx.redis.hset(k.batch(bid), "gone", 1)
    if ctx.scripts.ended(keys=[k.open, k.ended, k.stats, k.batch(bid)], args=[bid, now_ms(), "{}", ""]):
        logger.error("batch.gone", batch_id=bid, provider_batch_id=pid)
        report.gone.append(bid)


def mark_ended(ctx: Context, bid: str, batch: MessageBatch) -> bool:
    k = ctx.keys
    counts = json.dumps(batch.request_counts.model_dump())
    ended_at = batch.ended_at.isoformat() if batch.ended_at else ""
    return bool(ctx.scripts.ended(keys=[k.open, k.ended, k.stats, k.batch(bid)],
                                  args=[bid, now_ms(), counts, ended_at]))


def poll(ctx: Context, hand_off: Callable[[str], None]) -> PollReport:
    """One polling round. Safe when two run at once: the lock saves API calls, the CAS decides."""
    report = PollReport()
    k = ctx.keys
    lock_ms = max(1000, int(ctx.settings.poll_interval_seconds * 800))
    if ctx.redis.exists(k.poll_backoff) or not ctx.redis.set(k.poll_lock(), secrets.token_hex(8), nx=True,
                                                                px=lock_ms):
        report.skipped = "backoff or another poller"
        return report
    want, to_cancel = open_batches(ctx)
    report.open = len(want)
    if not want:
        return report
    cancel_provider_batches(ctx, to_cancel, report)
    try:
        seen = _fetch(ctx, want, report)
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        c = classify(exc)
        wait = c.retry_after or (60.0 if c.kind is Kind.ACCOUNT else ctx.settings.poll_interval_seconds)
        ctx.redis.set(k.poll_backoff, str(c.kind), px=int(wait * 1000))
        logger.warning("poll.failed", status=c.status, error_type=c.error_type, backoff_seconds=wait)
        report.skipped = f"api error {c.status}"
        return report
    for bid in report.gone:
        hand_off(bid)
    for pid, batch in seen.items():
        bid = want[pid][0]
        if batch.processing_status == "ended" and mark_ended(ctx, bid, batch):
            logger.info("batch.ended", batch_id=bid, provider_batch_id=pid,
                        counts=batch.request_counts.model_dump())
            hand_off(bid)
            report.ended.append(bid)
    return report

