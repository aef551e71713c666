"""One real-time answer for a deadline request: `messages.create` through the anthropic SDK (its
`betas` as the batch would have sent them), settled through the same deliver path as a batch result
(deliver.lua: S3 object, reply target, counters; exactly once by its state transition).

Rate limits are the API's: a 429 (its `retry-after`) or no free slot of the model's concurrency cap
(`BATCHLINE_REALTIME_MAX_CONCURRENCY`) is tried again later; any other failure, or too many tries,
falls back to the request's batch (route.lua 'F'): the request is never lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anthropic
import orjson

from batchline import log, objects, turnaround
from batchline.fields import B, R
from batchline.keys import REALTIME_BATCH
from batchline.leases import new_owner
from batchline.redis_client import text, text_map
from batchline.retry import RetryPolicy
from batchline.workers.context import Context
from batchline.workers.deadlines import entry, lease_until
from batchline.workers.provider import Kind, classify
from batchline.workers.results import Fanout

logger = log.get("batchline.realtime")
#: Tries of one call (429s and busy slots) before it falls back to the batch.
MAX_TRIES = 20
SLOT_WAIT_SECONDS = 0.5  # no free slot: try again this soon
LIVE = ("batched", "submitted", "ended")


@dataclass(frozen=True, slots=True)
class Answered:
    """What one try did: delivered, not_delivered (the other answer won), settled (nothing to do),
    retry (after `retry_after` seconds) or fell_back (to its batch)."""

    status: str
    retry_after: float = 0.0


def call(client: anthropic.Anthropic, params: dict[str, Any], betas: str) -> dict[str, Any]:
    """The Message as JSON: `client.beta.messages.create(betas=...)` with betas, else `messages.create`."""
    if betas:
        message: dict[str, Any] = client.beta.messages.create(**params, betas=betas.split(",")).to_dict()
    else:
        message = client.messages.create(**params).to_dict()
    return message


def _params(ctx: Context, raw: bytes) -> dict[str, Any]:
    if objects.is_ref(raw):
        raw = b"".join(ctx.params_store.read(objects.ref_key(raw)))
    params: dict[str, Any] = orjson.loads(raw)
    return params


def fall_back(ctx: Context, rid: str, reason: str) -> Answered:
    now = ctx.clock.now_ms()
    ctx.scripts.route(now, 0, [(rid, "F", reason, entry("realtime_failed", reason, now))])
    logger.warning("realtime.fell_back", request_id=rid, reason=reason)
    return Answered("fell_back")


def answer(ctx: Context, rid: str, tries: int = 0) -> Answered:
    """Try to answer `rid` real-time now (one try of at most `MAX_TRIES`)."""
    k, now = ctx.keys, ctx.clock.now_ms()
    state, bid, raw, betas, model, path, tenant = ctx.redis.hmget(
        k.request(rid), R.STATE, R.BATCH, R.PARAMS, R.BETAS, R.MODEL, R.PATH, R.TENANT
    )
    bid_s = text(bid) or ""
    if text(state) not in LIVE or raw is None or (bid_s != REALTIME_BATCH and text(path) != "hedged"):
        ctx.redis.zrem(k.realtime, rid)
        return Answered("settled")
    slots, token = k.realtime_slots(turnaround.family(text(model) or "")), new_owner()
    if not ctx.scripts.slot(slots, now, lease_until(now), ctx.settings.realtime_max_concurrency, token):
        return _later(ctx, rid, tries, SLOT_WAIT_SECONDS, "no free real-time slot for its model")
    try:
        message = call(ctx.anthropic, _params(ctx, raw if isinstance(raw, bytes) else raw.encode()), text(betas) or "")
    except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
        c = classify(exc)
        if c.status == 429 and c.kind is Kind.RETRY:
            return _later(ctx, rid, tries, c.retry_after or min(30.0, 2.0**tries), "429 rate limited")
        return fall_back(
            ctx,
            rid,
            f"real-time call failed ({c.status or type(exc).__name__} {c.error_type or ''}"
            f"{': ' + c.message[:120] if c.message else ''}): waits for its batch",
        )
    except Exception as exc:  # a params object gone, a bad answer: the batch still has the request
        return fall_back(ctx, rid, f"real-time call failed ({type(exc).__name__}): waits for its batch")
    finally:
        ctx.redis.zrem(slots, token)
    return _settle(ctx, rid, bid_s, text(tenant) or "", message)


def _later(ctx: Context, rid: str, tries: int, wait: float, why: str) -> Answered:
    if tries + 1 >= MAX_TRIES:
        return fall_back(ctx, rid, f"real-time call: {why}, {tries + 1} tries: waits for its batch")
    until = lease_until(ctx.clock.now_ms()) + int(wait * 1000)
    ctx.redis.zadd(ctx.keys.realtime, {rid: until}, xx=True)  # its lease covers the wait
    logger.info("realtime.retry_later", request_id=rid, reason=why, retry_after=wait, tries=tries + 1)
    return Answered("retry", wait)


def _settle(ctx: Context, rid: str, bid: str, tenant: str, message: dict[str, Any]) -> Answered:
    batch: dict[str, str] = (
        {B.STATE.value: "claimed"} if bid == REALTIME_BATCH else text_map(ctx.redis.hgetall(ctx.keys.batch(bid)))
    )
    fan = Fanout(ctx, bid, batch, policy=RetryPolicy.final_only(), realtime=True)
    try:
        fan.settle([{"custom_id": rid, "result": {"type": "succeeded", "message": message}}])
    finally:
        fan.close()
    ctx.redis.zrem(ctx.keys.realtime, rid)
    r = fan.report
    if r.delivered + r.handed + r.undeliverable:
        logger.info("realtime.delivered", request_id=rid, batch_id=bid)
        return Answered("delivered")
    # its batch answered first: this answer is recorded as spent, not delivered
    model = str(message.get("model", ""))
    cost = ctx.prices.cost_micros(model, message.get("usage") or {})
    day = time.strftime("%Y-%m-%d", time.gmtime(ctx.clock.now_ms() / 1000))
    ctx.scripts.waste(day, [(rid, tenant, model, cost.standard_micros if cost else 0, "rt")])
    logger.info("realtime.not_delivered", request_id=rid, batch_id=bid)
    return Answered("not_delivered")
