"""Reconcile, the effects around the pure decision (`workers/reconcile.py`): list the provider's
batches back to the create's window through every page, read the result lines of ended candidates
as proofs (reading is allowed; nothing of a candidate is stored, delivered or canceled), decide,
and apply the answer atomically (adopt with `submitted.lua`, release with `release.lua`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from functools import partial

import anthropic
import httpx2
import orjson
from anthropic.types.messages import MessageBatch

from batchline import log
from batchline.redis_client import text_map, texts
from batchline.workers.calls import ReadRetry, read
from batchline.workers.context import Context
from batchline.workers.lines import iter_lines
from batchline.workers.provider import classify
from batchline.workers.reconcile import (
    Action,
    Candidate,
    Decision,
    Intent,
    Listing,
    Proof,
    decide,
    intent_of,
    listed_back_far_enough,
    prove,
)
from batchline.workers.results_fetch import results_response

logger = log.get("batchline.reconcile")
PROOFS_TTL_SECONDS = 86_400


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _total(b: MessageBatch) -> int:
    c = b.request_counts
    return c.processing + c.succeeded + c.errored + c.canceled + c.expired


def list_window(ctx: Context, window_start_ms: int, retry: ReadRetry) -> Listing:
    """Every batch from the newest back past `window_start_ms` (`after_id` paging), or as far as the
    page budget and faults allowed (then `complete` is False)."""
    found: list[Candidate] = []
    after: str | None = None
    for _ in range(ctx.settings.reconcile_max_pages):
        call = partial(ctx.anthropic.messages.batches.list, limit=1000, after_id=after or anthropic.omit)
        try:
            page = read(call, retry, lambda: None, "reconcile.list")
        except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
            logger.warning("reconcile.list_failed", status=classify(exc).status, pages_read=len(found))
            return Listing(tuple(found), False)
        found += [Candidate(b.id, _total(b), _ms(b.created_at), b.processing_status == "ended") for b in page.data]
        oldest = _ms(page.data[-1].created_at) if page.data else None
        if listed_back_far_enough(oldest, bool(page.has_more), window_start_ms):
            return Listing(tuple(found), True)
        if not page.last_id:
            return Listing(tuple(found), False)
        after = page.last_id
    return Listing(tuple(found), False)


def _custom_ids(lines: Iterator[bytes]) -> Iterator[str]:
    for line in lines:
        yield str(orjson.loads(line).get("custom_id", ""))


def read_proof(ctx: Context, provider_id: str, members: set[str], size: int) -> Proof | None:
    """Stream a candidate's result lines until they prove or disprove it; None when unreadable now."""
    try:
        batch = ctx.anthropic.messages.batches.retrieve(provider_id)
        with results_response(ctx, batch) as resp:
            return prove(_custom_ids(iter_lines(resp.iter_bytes(64 * 1024))), members, size)
    except (anthropic.APIStatusError, anthropic.APIConnectionError, httpx2.HTTPError, orjson.JSONDecodeError) as exc:
        logger.warning("reconcile.proof_unreadable", provider_batch_id=provider_id, error=type(exc).__name__)
        return None


def _intent(ctx: Context, bid: str, batch: dict[str, str]) -> Intent:
    s = ctx.settings
    answered = batch.get("answered_at")
    return intent_of(
        bid,
        int(batch["n"]),
        int(batch["intent_at"]),
        int(answered) if answered else None,
        create_timeout_ms=int(s.create_timeout_seconds * 1000),
        skew_ms=int(s.clock_skew_seconds * 1000),
        visibility_ms=int(s.reconcile_delay_seconds * 1000),
    )


def _proofs(ctx: Context, bid: str) -> dict[str, Proof]:
    return {pid: Proof(v) for pid, v in text_map(ctx.redis.hgetall(ctx.keys.reconcile_proofs(bid))).items()}


def _taken(ctx: Context, listing: Listing) -> set[str]:
    pids = [c.provider_id for c in listing.candidates]
    if not pids:
        return set()
    owners = ctx.redis.hmget(ctx.keys.provider_index, pids)
    return {pid for pid, owner in zip(pids, owners, strict=True) if owner is not None}


def reconcile_decision(ctx: Context, bid: str, batch: dict[str, str]) -> Decision:
    """List, read the proofs the decision asks for (caching them), and decide."""
    k = ctx.keys
    intent = _intent(ctx, bid, batch)
    listing = list_window(ctx, intent.window_start_ms, ReadRetry())
    taken, proofs = _taken(ctx, listing), _proofs(ctx, bid)
    decision = decide(intent, listing, proofs, taken, ctx.clock.now_ms())
    if not decision.to_prove:
        return decision
    members = set(texts(ctx.redis.lrange(k.batch_members(bid), 0, -1)))
    for pid in decision.to_prove:
        proof = read_proof(ctx, pid, members, intent.size)
        if proof is not None:
            proofs[pid] = proof
            ctx.redis.hset(k.reconcile_proofs(bid), pid, str(proof))
            ctx.redis.expire(k.reconcile_proofs(bid), PROOFS_TTL_SECONDS)
            logger.info("reconcile.proof", batch_id=bid, provider_batch_id=pid, proof=str(proof))
    return decide(intent, listing, proofs, taken, ctx.clock.now_ms())


__all__ = ["Action", "reconcile_decision"]
