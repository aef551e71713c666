"""The aggregator: claim pending requests, build a create body, create the batch safely.

Crash safety: the claim is atomic and leased; the intent (`creating`) is written before the
create call; the call is made once (no SDK retries); the provider's id is saved right after.
A process that dies anywhere leaves a lease the sweeper resolves (release or reconcile).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import anthropic
import redis
from anthropic.types.messages import MessageBatch

from batchline import log, pending
from batchline.config.settings import Settings
from batchline.errors import NotReplicated, RetryableError
from batchline.fields import B, R
from batchline.leases import new_owner
from batchline.objects import ObjectStore, is_ref
from batchline.redis_client import text, texts
from batchline.requests import ITEM_OVERHEAD
from batchline.retry import RetryPolicy
from batchline.workers.body import build_body, has_refs, refs, stream_body
from batchline.workers.context import Context
from batchline.workers.packing import Limits, QueueView, Take, next_batch
from batchline.workers.provider import Kind, beta_header, classify
from batchline.workers.results import Fanout

logger = log.get("batchline.aggregator")


@dataclass(frozen=True, slots=True)
class Created:
    batch_id: str
    provider_id: str | None  # None when the create failed or its outcome is unknown
    requests: int
    bytes: int
    outcome: str  # "submitted" | "released" | "ambiguous" | "failed"


def new_batch_id(now: int) -> str:
    return f"blb_{now:012x}{secrets.token_hex(5)}"


def limits(ctx: Context, in_flight: int | None = None, lift: bool = True) -> Limits:
    """The configured limits, narrowed for a while after a 413 (bytes) or a 400 (count, bisecting),
    and the in-flight limit lowered after a queue-full 429 until our batches have ended (`lift`
    False: only read, as beat's check does; the pack that follows lifts it)."""
    s = ctx.settings
    max_requests, max_bytes = ctx.redis.hmget(ctx.keys.limit_override, "max_requests", "max_bytes")
    return Limits(
        min(s.max_batch_requests, int(max_requests or s.max_batch_requests)),
        min(s.max_batch_bytes, int(max_bytes or s.max_batch_bytes)),
        int(s.max_wait_seconds * 1000),
        effective_in_flight_limit(ctx, in_flight, lift),
    )


def effective_in_flight_limit(ctx: Context, in_flight: int | None, lift: bool = True) -> int:
    """`BATCHLINE_MAX_REQUESTS_IN_FLIGHT`, or less after the provider said its queue is full: then what
    was in flight at that moment, so only as much goes out as ending batches free. Lifted once every
    batch has ended (nothing in flight) or after a day, when every batch of that time has expired."""
    configured: int = ctx.settings.max_requests_in_flight
    cap = ctx.redis.get(ctx.keys.in_flight_cap)
    if cap is None:
        return configured
    if in_flight == 0:
        if not lift:
            return configured
        ctx.redis.delete(ctx.keys.in_flight_cap)
        logger.info("submission.queue_limit_lifted", limit=configured)
        return configured
    return min(configured, int(cap))


def queue_view(ctx: Context) -> QueueView:
    queue = pending.read(ctx.redis, ctx.keys)
    oldest = 0 if queue.oldest_queued_at_ms is None else max(0, ctx.clock.now_ms() - queue.oldest_queued_at_ms)
    return QueueView(queue.requests, queue.bytes, oldest, queue.in_flight)


class Claim(NamedTuple):
    batch_id: str
    owner: str  # the lease's token: only its holder moves the batch on while the lease lasts
    flat: list[bytes]  # [rid, params, rid, params, ...]


def claim(ctx: Context, take: Take) -> Claim:
    """Atomically move requests into a new batch, leased to this caller."""
    now = ctx.clock.now_ms()
    bid, owner = new_batch_id(now), new_owner()
    flat = ctx.scripts.claim(bid, owner, take.max_requests, take.max_bytes, now,
                             now + int(ctx.settings.claim_lease_seconds * 1000))
    return Claim(bid, owner, flat)


class StreamedBody:
    """A create body streamed from its stored pieces (workers/body.py), with its exact length."""

    def __init__(self, flat: list[bytes], store: ObjectStore, length: int) -> None:
        self.flat, self.store, self.length = flat, store, length

    def __iter__(self) -> Iterator[bytes]:
        return stream_body(self.flat, self.store)

    def __len__(self) -> int:
        return self.length


def body_of(ctx: Context, bid: str, flat: list[bytes]) -> tuple[bytes | StreamedBody, int]:
    """The create body of a claim and how many requests it carries. Inline only: the bytes, as ever.
    With requests kept by reference: each object is checked first; one that is gone (deleted by hand,
    expired) settles its request `errored` with `params_unavailable`, and the rest go on, streamed."""
    if not has_refs(flat):
        return build_body(flat), len(flat) // 2
    store = ctx.params_store
    pairs = refs(flat)
    with ThreadPoolExecutor(max_workers=max(1, min(len(pairs), ctx.settings.s3_put_threads))) as pool:
        found = list(pool.map(store.exists, [key for _, key in pairs]))
    gone = {rid for (rid, _), ok in zip(pairs, found, strict=True) if not ok}
    if gone:
        fail_requests(ctx, bid, sorted(gone), "params_unavailable",
                      "the request's params object is no longer in the object store")
        keep = [i for i in range(0, len(flat), 2) if flat[i].decode() not in gone]
        flat = [x for i in keep for x in (flat[i], flat[i + 1])]
    pipe = ctx.redis.pipeline(transaction=False)
    for rid, _ in refs(flat):
        pipe.hget(ctx.keys.request(rid), R.SIZE)
    sizes = iter(pipe.execute())
    length = len(b'{"requests":[]}') + max(0, len(flat) // 2 - 1)  # brackets and commas
    for i in range(0, len(flat), 2):
        item = ITEM_OVERHEAD - 1 + len(flat[i])  # {"custom_id":"RID","params":} without its comma
        length += (int(next(sizes) or 0) - 1) if is_ref(flat[i + 1]) else item + len(flat[i + 1])
    return StreamedBody(flat, store, length), len(flat) // 2


def intent_lease_ms(s: Settings) -> int:
    """The lease of a create in flight: its whole timeout and a claim lease on top."""
    return int((s.create_timeout_seconds + s.claim_lease_seconds) * 1000)


@contextmanager
def lease_renewed(ctx: Context, bid: str, owner: str) -> Iterator[None]:
    """Keep the batch's lease alive while this process works on it (a slow upload of a large body
    can outlast any fixed lease); if the process dies, renewals stop and the sweeper takes over.
    A renewal only ever pushes the lease later (GT), and a Redis error (a restart, a failover) costs
    one renewal, not the thread: a create in flight is never left without its lease."""
    lease_ms = intent_lease_ms(ctx.settings)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease_ms / 3000):
            now = ctx.clock.now_ms()  # only while `creating` and ours: a saved or released batch is left alone
            try:
                ctx.scripts.lease(ctx.keys.batch(bid), owner, now, now + lease_ms, state="creating", index=bid)
            except redis.RedisError as exc:  # a restart or failover costs one renewal, not the thread
                logger.warning("batch.lease_renewal_failed", batch_id=bid, error=type(exc).__name__)

    thread = threading.Thread(target=renew, name=f"lease-{bid}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def create(ctx: Context, bid: str, body: bytes | StreamedBody, n: int, owner: str, betas: str = "") -> Created:
    """Create the provider batch; `betas` (canonical "a,b") go out as its `anthropic-beta` header, as
    `client.beta.messages.batches.create(betas=[...])` sends them."""
    k, s = ctx.keys, ctx.settings
    now = ctx.clock.now_ms()
    # The intent's lease covers the whole create (its timeout) and a claim lease on top.
    try:
        intended = ctx.scripts.intent(bid, owner, now, now + intent_lease_ms(s))
    except NotReplicated:  # no create made: give the requests back now, not when the intent's lease ends
        logger.warning("batch.intent_not_replicated", batch_id=bid)
        with contextlib.suppress(NotReplicated):  # applied on the primary all the same
            release(ctx, bid, "intent_not_replicated", owner)
        return Created(bid, None, n, len(body), "released")
    if not intended:
        logger.warning("batch.intent_lost", batch_id=bid)
        return Created(bid, None, n, len(body), "released")
    ctx.crash_point("before_create")
    failure: BaseException | None = None
    with lease_renewed(ctx, bid, owner):
        try:
            batch = ctx.anthropic.post(
                "/v1/messages/batches",
                cast_to=MessageBatch,
                content=body,
                options={"headers": {"Content-Type": "application/json", "Content-Length": str(len(body)),
                                     **beta_header(betas)},
                         "timeout": s.create_timeout_seconds, "max_retries": 0},
            )
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            failure = exc
    if failure is not None:  # renewals have stopped: the failure handling sets the lease it needs
        return _create_failed(ctx, bid, owner, n, len(body), failure)
    ctx.crash_point("after_create")
    saved = ctx.scripts.submitted(bid, batch.id, ctx.clock.now_ms(), owner)
    if not saved:
        return _save_lost(ctx, bid, batch.id, n, len(body))
    if ctx.redis.exists(k.limit_override):  # a split is narrowing batches: some of them do go through
        ctx.redis.hset(k.limit_override, "bisect_ok", 1)
    logger.info("batch.submitted", batch_id=bid, provider_batch_id=batch.id, requests=n, bytes=len(body))
    return Created(bid, batch.id, n, len(body), "submitted")


def _save_lost(ctx: Context, bid: str, pid: str, n: int, size: int) -> Created:
    """The create succeeded but this batch was settled meanwhile. If the sweeper adopted this very
    batch, all is well; if it released the requests (they will go out again), cancel this one now so
    that as little as possible of it is paid."""
    state, adopted = ctx.redis.hmget(ctx.keys.batch(bid), B.STATE, B.PROVIDER_ID)
    if text(adopted) == pid:
        return Created(bid, pid, n, size, "submitted")
    try:
        ctx.anthropic.messages.batches.cancel(pid)
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        logger.error("batch.orphan_cancel_failed", batch_id=bid, provider_batch_id=pid, status=classify(exc).status)
    logger.error("batch.orphan_canceled", batch_id=bid, provider_batch_id=pid, state=text(state))
    return Created(bid, None, n, size, "released")


OVERRIDE_SECONDS = 120
CAP_SECONDS = 25 * 3600  # a lowered in-flight limit outlives no batch: they all end within 24 h


def _create_failed(ctx: Context, bid: str, owner: str, n: int, size: int, exc: BaseException) -> Created:
    c = classify(exc)
    k = ctx.keys
    if c.kind is Kind.AMBIGUOUS:
        # Created or not, nobody knows yet; but no create is in flight any more. Keep the intent, note
        # when the answer came (the end of the window a batch could have appeared in) and let the sweeper
        # reconcile it as soon as the provider's list shows what was created (reconcile_delay_seconds).
        answered = ctx.clock.now_ms()
        ctx.redis.hset(k.batch(bid), "answered_at", answered)
        ctx.scripts.lease(k.batch(bid), owner, answered, answered + int(ctx.settings.reconcile_delay_seconds * 1000),
                          state="creating", index=bid)
        logger.warning("batch.create_ambiguous", batch_id=bid, status=c.status, error=c.message)
        return Created(bid, None, n, size, "ambiguous")
    if c.kind in (Kind.TOO_LARGE, Kind.INVALID) and n == 1:
        if c.kind is Kind.INVALID and not ctx.redis.hexists(k.limit_override, "bisect_ok"):
            # Refused alone, and no narrowed create went through yet. One lone refusal proves nothing (the
            # halves tried so far may all have held it): it goes behind the others, which are tried first.
            # Two different requests refused alone, or no other to try: the fault is not in the requests.
            rid = text(ctx.redis.lindex(k.batch_members(bid), 0)) or ""
            pipe = ctx.redis.pipeline()
            pipe.hset(k.limit_override, f"lone:{rid}", 1)
            pipe.hkeys(k.limit_override)
            pipe.hget(k.stats, "pending")
            _, fields, waiting = pipe.execute()
            lone = sum(1 for f in fields if f.startswith(b"lone:"))
            if lone >= 2 or int(waiting or 0) <= 0:
                release(ctx, bid, "create_rejected", owner)
                pause(ctx, "create_rejected", c.message or f"every create refused with HTTP {c.status}")
            else:
                release(ctx, bid, "create_rejected_alone", owner, where="tail")
                logger.warning("batch.rejected_alone", batch_id=bid, status=c.status)
            return Created(bid, None, n, size, "released")
        # Bisected down to the one request the API refuses (other halves went through): it alone fails.
        fail_claimed(ctx, bid, "invalid_request_error" if c.kind is Kind.INVALID else "request_too_large",
                     c.message or f"create refused with HTTP {c.status}")
        release(ctx, bid, f"create_{c.kind}", owner)
        return Created(bid, None, n, size, "failed")
    splitting = c.kind in (Kind.TOO_LARGE, Kind.INVALID)
    # A split puts the later half first: wherever the offending request sits, some half without it
    # goes through (which tells a bad request from a refused account) before it is narrowed alone.
    release(ctx, bid, f"create_{c.kind}", owner, where="rotate" if splitting else "head")
    if splitting:
        # Split and resubmit the halves: the next claims are half as big (by bytes for a 413, by count
        # for a 400) until the offending request is alone; the narrowing lapses by itself.
        too_large = c.kind is Kind.TOO_LARGE
        field, value = ("max_bytes", max(1024, size // 2)) if too_large else ("max_requests", (n + 1) // 2)
        pipe = ctx.redis.pipeline()
        pipe.hset(k.limit_override, field, value)
        pipe.expire(k.limit_override, OVERRIDE_SECONDS)
        pipe.execute()
        logger.warning("batch.split", batch_id=bid, status=c.status, **{field: value})
        return Created(bid, None, n, size, "released")
    if c.kind is Kind.ACCOUNT:
        pause(ctx, c.error_type or str(c.status), c.message)
        return Created(bid, None, n, size, "released")
    if c.queue_full:
        # The tier's processing queue is full: retrying creates into it cannot help. What is in flight
        # now (this batch released) becomes the limit; ending batches make room for the next ones.
        in_flight = int(ctx.redis.hget(k.stats, "in_flight") or 0)
        if in_flight > 0:
            ctx.redis.set(k.in_flight_cap, in_flight, ex=CAP_SECONDS)
            logger.warning("submission.queue_full", batch_id=bid, in_flight_limit=in_flight, error=c.message)
            return Created(bid, None, n, size, "released")
    backoff = c.retry_after or 5.0
    ctx.redis.set(k.create_backoff, c.kind, px=int(backoff * 1000))
    logger.warning("batch.create_throttled", batch_id=bid, status=c.status, error_type=c.error_type,
                   backoff_seconds=backoff)
    return Created(bid, None, n, size, "released")


def fail_claimed(ctx: Context, bid: str, etype: str, message: str) -> None:
    """Settle the requests of a claimed batch as final failures (the API refused them at create)."""
    fail_requests(ctx, bid, texts(ctx.redis.lrange(ctx.keys.batch_members(bid), 0, -1)), etype, message)


def fail_requests(ctx: Context, bid: str, rids: list[str], etype: str, message: str) -> None:
    """Settle some requests of a claimed batch as final failures; the others are left as they are."""
    line = {"type": "errored", "error": {"type": "error", "error": {"type": etype, "message": message}}}
    fan = Fanout(ctx, bid, {B.STATE: "claimed"}, policy=RetryPolicy.final_only())
    try:
        fan.settle([{"custom_id": rid, "result": line} for rid in rids])
    finally:
        fan.close()
    logger.error("request.failed_at_create", batch_id=bid, requests=len(rids), error_type=etype)


def pause(ctx: Context, reason: str, message: str) -> None:
    """Stop all submission: requests stay queued; a probe resumes it (see `probe_pause`)."""
    now = ctx.clock.now_ms()
    if ctx.redis.hsetnx(ctx.keys.paused, "since", now):
        logger.error("submission.paused", reason=reason, error=message)
    ctx.redis.hset(ctx.keys.paused, mapping={"reason": reason, "message": message[:300], "probed_at": now})


def probe_pause(ctx: Context) -> bool:
    """While paused, try one cheap call every `pause_probe_seconds`; resume when it succeeds.
    Returns True when submission is (still) paused."""
    k = ctx.keys
    probed_at = ctx.redis.hget(k.paused, "probed_at")
    if probed_at is None:
        return False
    now = ctx.clock.now_ms()
    if now - int(probed_at) < ctx.settings.pause_probe_seconds * 1000:
        return True
    ctx.redis.hset(k.paused, "probed_at", now)
    try:
        ctx.anthropic.messages.batches.list(limit=1)
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        logger.warning("submission.still_paused", status=classify(exc).status)
        return True
    ctx.redis.delete(k.paused)
    logger.info("submission.resumed")
    return False


def release(ctx: Context, bid: str, reason: str, owner: str = "", where: str = "head") -> int:
    """Return a claimed/creating batch's requests to the queue (`where`: head, rotate, tail; see
    release.lua): by its lease's holder, or by anyone (`owner` '') once the lease expired. The ones
    their callers canceled meanwhile get their one `canceled` delivery first."""
    from batchline.workers.cancels import settle_canceled

    for _ in range(RELEASE_PASSES):
        settle_canceled(ctx, bid)
        returned = ctx.scripts.release(bid, ctx.clock.now_ms(), reason, owner, where)
        if returned >= 0:
            return returned
    logger.warning("batch.release_deferred", batch_id=bid, reason=reason)  # cancels keep landing: next sweep
    return 0


RELEASE_PASSES = 5


def pack_once(ctx: Context) -> Created | None:
    """Send at most one batch, if the packing rule says one is due."""
    if ctx.redis.exists(ctx.keys.create_backoff) or probe_pause(ctx):
        return None
    view = queue_view(ctx)
    take = next_batch(view, limits(ctx, view.in_flight))
    if take is None:
        return None
    claimed = claim(ctx, take)
    if not claimed.flat:
        return None
    ctx.crash_point("after_claim")
    betas = text(ctx.redis.hget(ctx.keys.batch(claimed.batch_id), B.BETAS)) or ""  # set by the claim: one per batch
    logger.info("batch.claimed", batch_id=claimed.batch_id, requests=len(claimed.flat) // 2, reason=take.reason,
                betas=betas or None)
    try:
        body, n = body_of(ctx, claimed.batch_id, claimed.flat)
    except RetryableError as exc:  # the params store is unreachable: the requests go back, nothing was sent
        logger.warning("batch.params_store_unavailable", batch_id=claimed.batch_id, error=str(exc))
        release(ctx, claimed.batch_id, "params_store_unavailable", claimed.owner)
        ctx.redis.set(ctx.keys.create_backoff, "params_store", px=5000)
        return Created(claimed.batch_id, None, len(claimed.flat) // 2, 0, "released")
    if n == 0:  # every request of it was settled (params gone): nothing left to create
        release(ctx, claimed.batch_id, "params_unavailable", claimed.owner)
        return Created(claimed.batch_id, None, 0, 0, "failed")
    return create(ctx, claimed.batch_id, body, n, claimed.owner, betas)


def migrate_legacy_pending(ctx: Context) -> int:
    """Move what 0.1's single pending list holds into the per-tenant lists (an upgrade, or a 0.1
    producer still writing during a rolling one); how many requests moved. One LLEN when none."""
    moved, chunk = 0, 5000
    length = int(ctx.redis.llen(ctx.keys.legacy_pending))
    if length:
        # at most what was there when we looked, so a 0.1 producer writing faster cannot hold the pack
        for _ in range(-(-length // chunk)):
            n, left = ctx.scripts.migrate_pending(chunk)
            moved += n
            if not left:
                break
        logger.info("pending.migrated", requests=moved)
    return moved


def pack(ctx: Context, budget_seconds: float = 30.0) -> list[Created]:
    """Send every batch that is due, for at most `budget_seconds`."""
    deadline = time.monotonic() + budget_seconds
    migrate_legacy_pending(ctx)
    done: list[Created] = []
    while time.monotonic() < deadline:
        created = pack_once(ctx)
        if created is None:
            break
        done.append(created)
        if created.outcome != "submitted":
            break
    return done
