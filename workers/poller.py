"""The poller (run by beat): update every open batch with as few API calls as possible and hand
each ended batch to the result workers exactly once (compare-and-set in `ended.lua`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import anthropic
from anthropic.types.messages import MessageBatch

from batchline import log
from batchline.errors import NotReplicated
from batchline.fields import B
from batchline.leases import handoff_until, new_owner
from batchline.redis_client import texts
from batchline.workers.calls import ReadRetry, read
from batchline.workers.context import Context
from batchline.workers.poll_plan import OpenBatch, list_more, to_retrieve
from batchline.workers.provider import Classified, Kind, classify

logger = log.get("batchline.poller")


@dataclass
class PollReport:
    open: int = 0
    api_calls: int = 0  # list and retrieve calls of the round (retries included), cancels apart
    list_calls: int = 0
    retrieve_calls: int = 0
    cancel_calls: int = 0
    ended: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # 404 long after create: handed off to be re-driven
    # ended on the primary but not acknowledged by BATCHLINE_REDIS_MIN_REPLICAS in time: handed off all
    # the same (collecting is idempotent per request), and the round goes on to the next batch
    not_replicated: list[str] = field(default_factory=list)
    skipped: str | None = None
    failed: str | None = None  # a fault that ended the round early (what it saw is kept)


def open_batches(ctx: Context) -> tuple[dict[str, OpenBatch], list[tuple[str, str]]]:
    """provider id -> the open batch (ids, submitted at, last seen) for every open batch, and the
    (batch id, provider id) of those whose every request was canceled by its caller and whose
    provider cancel is not sent."""
    k = ctx.keys
    bids = texts(ctx.redis.zrange(k.open, 0, -1))
    pipe = ctx.redis.pipeline(transaction=False)
    for bid in bids:
        pipe.hmget(k.batch(bid), B.PROVIDER_ID, B.SUBMITTED_AT, B.N, B.CANCELS, B.CANCEL_SENT, B.POLLED_AT)
    out, to_cancel = {}, []
    for bid, (pid, submitted_at, n, cancels, sent, polled) in zip(bids, pipe.execute(), strict=True):
        if pid:
            out[pid.decode()] = OpenBatch(bid, pid.decode(), int(submitted_at or 0), int(polled or 0))
            if not sent and int(cancels or 0) >= int(n or 0) > 0:
                to_cancel.append((bid, pid.decode()))
    return out, to_cancel


def cancel_provider_batches(ctx: Context, to_cancel: list[tuple[str, str]], report: PollReport) -> None:
    for bid, pid in to_cancel:
        if not ctx.redis.hsetnx(ctx.keys.batch(bid), B.CANCEL_SENT, ctx.clock.now_ms()):
            continue
        report.cancel_calls += 1  # cancels have no share of the list/retrieve budget
        try:
            ctx.anthropic.messages.batches.cancel(pid)
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            ctx.redis.hdel(ctx.keys.batch(bid), B.CANCEL_SENT)  # try again next round
            logger.warning("batch.cancel_failed", batch_id=bid, provider_batch_id=pid, status=classify(exc).status)
            continue
        logger.info("batch.canceled", batch_id=bid, provider_batch_id=pid)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _list_pages(ctx: Context, want: dict[str, OpenBatch], seen: dict[str, MessageBatch], report: PollReport) -> None:
    """List pages, newest first, while the plan says they may still show open batches."""
    budget, skew_ms = ctx.settings.poll_call_budget, int(ctx.settings.clock_skew_seconds * 1000)
    oldest_open = min(b.submitted_ms for b in want.values())
    pages, after, has_more, page_oldest = 0, None, True, None

    def count() -> None:
        report.list_calls += 1
        report.api_calls += 1

    while list_more(pages, budget, len(want) - len(seen), has_more, page_oldest, oldest_open, skew_ms):
        call = partial(ctx.anthropic.messages.batches.list, limit=1000, after_id=after or anthropic.omit)
        page = read(call, READ_RETRY, count, "poll.list")
        pages += 1
        seen.update((b.id, b) for b in page.data if b.id in want)
        has_more, after = bool(page.has_more), page.last_id
        page_oldest = _ms(page.data[-1].created_at) if page.data else None
        if not after:
            break


def _retrieve_rest(ctx: Context, want: dict[str, OpenBatch], seen: dict[str, MessageBatch], report: PollReport) -> None:
    """One retrieve each for open batches the pages did not show, the longest unseen first."""
    grace_ms = int(ctx.settings.fresh_batch_grace_seconds * 1000)

    def count() -> None:
        report.retrieve_calls += 1
        report.api_calls += 1

    for ob in to_retrieve(list(want.values()), seen, ctx.settings.poll_call_budget - report.api_calls):
        if report.api_calls >= ctx.settings.poll_call_budget:
            break
        try:
            seen[ob.provider_id] = read(partial(ctx.anthropic.messages.batches.retrieve, ob.provider_id),
                                        READ_RETRY, count, "poll.retrieve")
        except anthropic.NotFoundError:
            # A 404 right after create is a known transient (docs/batches-api.md); later it is not.
            age = ctx.clock.now_ms() - ob.submitted_ms
            if age < grace_ms:
                logger.info("batch.not_found", provider_batch_id=ob.provider_id, age_ms=age, batch_id=ob.batch_id)
            elif ctx.redis.hincrby(ctx.keys.batch(ob.batch_id), B.NOT_FOUND, 1) >= GONE_AFTER_MISSES:
                mark_gone(ctx, ob.batch_id, ob.provider_id, report)


Seen = dict[str, MessageBatch]


def _fetch(ctx: Context, want: dict[str, OpenBatch], report: PollReport) -> tuple[Seen, Classified | None]:
    """What the round saw, and the fault that ended it early (faults are retried first, honouring
    `retry-after`; what was seen before one is kept)."""
    seen: dict[str, MessageBatch] = {}
    try:
        _list_pages(ctx, want, seen, report)
        _retrieve_rest(ctx, want, seen, report)
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        return seen, classify(exc)
    return seen, None


GONE_AFTER_MISSES = 3
READ_RETRY = ReadRetry(tries=3, base_seconds=0.5, cap_seconds=5.0)


def record_round(ctx: Context, want: dict[str, OpenBatch], seen: Seen, report: PollReport) -> None:
    """When each open batch was last seen (the rotation's order), and the round's API calls (metrics)."""
    k, now = ctx.keys, ctx.clock.now_ms()
    pipe = ctx.redis.pipeline(transaction=False)
    for pid in seen:
        pipe.hset(k.batch(want[pid].batch_id), "polled_at", now)
    pipe.hset(k.stats, "poll_round_api_calls", report.api_calls)
    pipe.hincrby(k.counters, "poll_rounds", 1)
    for op, n in (("list", report.list_calls), ("retrieve", report.retrieve_calls), ("cancel", report.cancel_calls)):
        if n:
            pipe.hincrby(k.counters, f"api_calls:poll:{op}", n)
    pipe.execute()


def mark_gone(ctx: Context, bid: str, pid: str, report: PollReport) -> None:
    """A batch the provider keeps answering 404 for (deleted in the Console, say): it ends with no
    results; the result worker re-drives its requests, and its in-flight budget is released."""
    k = ctx.keys
    ctx.redis.hset(k.batch(bid), B.GONE, 1)
    now = ctx.clock.now_ms()
    if _ended(ctx, bid, now, "{}", "", report):
        logger.error("batch.gone", batch_id=bid, provider_batch_id=pid)
        report.gone.append(bid)


def mark_ended(ctx: Context, bid: str, batch: MessageBatch, report: PollReport) -> bool:
    counts = json.dumps(batch.request_counts.model_dump())
    ended_at = batch.ended_at.isoformat() if batch.ended_at else ""
    now = ctx.clock.now_ms()
    return _ended(ctx, bid, now, counts, ended_at, report)


def _ended(ctx: Context, bid: str, now: int, counts: str, ended_at: str, report: PollReport) -> bool:
    """The ended transition. One the replicas did not acknowledge in time is applied on the primary, so
    it counts as the primary answered: one slow replica neither stops the round nor leaves the batch
    to wait for the sweeper's hand-off."""
    try:
        return ctx.scripts.ended(bid, now, counts, ended_at, handoff_until(ctx.settings, now))
    except NotReplicated as exc:
        logger.warning("redis.not_replicated", batch_id=bid, step="ended", error=str(exc))
        report.not_replicated.append(bid)
        return bool(exc.result)


def poll(ctx: Context, hand_off: Callable[[str], None]) -> PollReport:
    """One polling round. Safe when two run at once: the lock saves API calls, the CAS decides."""
    report = PollReport()
    k = ctx.keys
    lease_ms, now = max(1000, int(ctx.settings.poll_interval_seconds * 800)), ctx.clock.now_ms()
    if ctx.redis.exists(k.poll_backoff) or not ctx.scripts.lease(k.poll_lock(), new_owner(), now, now + lease_ms,
                                                                 expire=True):
        report.skipped = "backoff or another poller"
        return report
    want, to_cancel = open_batches(ctx)
    report.open = len(want)
    if not want:
        return report
    cancel_provider_batches(ctx, to_cancel, report)
    seen, failure = _fetch(ctx, want, report)
    record_round(ctx, want, seen, report)
    if failure is not None:
        wait = failure.retry_after or (60.0 if failure.kind is Kind.ACCOUNT else ctx.settings.poll_interval_seconds)
        ctx.redis.set(k.poll_backoff, str(failure.kind), px=int(wait * 1000))
        logger.warning("poll.failed", status=failure.status, error_type=failure.error_type, backoff_seconds=wait,
                       seen=len(seen))
        report.failed = f"api error {failure.status}"
    for bid in report.gone:
        hand_off(bid)
    for pid, batch in seen.items():
        bid = want[pid].batch_id
        if batch.processing_status == "ended" and mark_ended(ctx, bid, batch, report):
            logger.info("batch.ended", batch_id=bid, provider_batch_id=pid,
                        counts=batch.request_counts.model_dump())
            hand_off(bid)
            report.ended.append(bid)
    return report

