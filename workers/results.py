"""The result worker: stream an ended batch's results and fan each line out by custom_id.

Streaming end to end: the body is read in chunks, split into lines, handled `results_chunk_lines`
at a time, and tee'd to a multipart S3 upload; nothing holds the whole file. A worker that dies
is replaced by one that streams again and skips what was delivered (state checked per record in
`deliver.lua`), so no target receives an outcome twice.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import orjson
import redis
from anthropic.types.messages import MessageBatch

from batchline import log, turnaround
from batchline.clock import iso
from batchline.errors import InvalidRequest, RetryableError
from batchline.fields import B, R
from batchline.leases import HANDOFF, LeaseLost, handoff_until, new_owner
from batchline.redis_client import text, text_map, texts
from batchline.requests import ReplyTarget, check_reply_to
from batchline.retry import RETRY, RetryPolicy
from batchline.scripts import DeliverRow
from batchline.workers.context import Context
from batchline.workers.costing import UNPRICED, cost_field, cost_usd
from batchline.workers.lines import iter_lines
from batchline.workers.provider import beta_header, classify
from batchline.workers.results_fetch import results_response
from batchline.workers.results_location import archived
from batchline.workers.sinks import RawUpload, S3Results, raw_key, result_key, result_object
from batchline.workers.targets import send_all

logger = log.get("batchline.results")
SETTLE_FIELDS = (R.STATE, R.BATCH, R.TENANT, R.CUSTOM_ID, R.REPLY_TO, R.QUEUED_AT, R.ATTEMPTS, R.CANCEL, R.PATH)


@dataclass
class CollectReport:
    batch_id: str
    lines: int = 0
    delivered: int = 0
    skipped: int = 0  # already delivered by an earlier, interrupted run
    retried: int = 0  # sent back to pending for a new batch (transient error, expired)
    stale: int = 0  # lines whose id is not (or no longer) a request of this batch: never delivered
    undeliverable: int = 0  # final, but the reply target refused it (kept for `batchline redeliver`)
    handed: int = 0  # final, for a webhook or SQS target: in the outbox, sent by the delivery tasks
    status: str = "done"


def _tee(chunks: Iterable[bytes], raw: RawUpload | None) -> Iterator[bytes]:
    for chunk in chunks:
        if raw is not None:
            raw.write(chunk)
        yield chunk


def _error(result: dict[str, Any]) -> dict[str, Any]:
    if result.get("type") != "errored":
        return {}
    err = result.get("error") or {}
    inner = err.get("error") if isinstance(err.get("error"), dict) else err
    return inner if isinstance(inner, dict) else {}


def error_type(result: dict[str, Any]) -> str:
    """The error type of an errored line: it sits at result.error.error.type (nested)."""
    return str(_error(result).get("type", ""))


def error_message(result: dict[str, Any]) -> str | None:
    message = _error(result).get("message")
    return str(message)[:500] if message else None


class Fanout:
    """Settles chunks of result lines of one batch: deliver final outcomes, re-drive the rest."""

    def __init__(self, ctx: Context, bid: str, batch: dict[str, str], policy: RetryPolicy | None = None,
                 realtime: bool = False) -> None:
        self.ctx, self.bid, self.batch = ctx, bid, batch
        self.realtime = realtime  # answers of the real-time Messages API (deadlines): paid at standard price
        self.s3 = S3Results(ctx.s3, ctx.settings) if ctx.settings.s3_bucket else None
        self.prefix = ctx.keys.request("")
        self.policy = policy or RetryPolicy(ctx.settings.max_attempts)
        self.report = CollectReport(bid)
        self.models: set[str] = set()  # of its succeeded lines: the batch's turnaround is recorded per model

    def deliver(self, lines: list[bytes]) -> None:
        self.settle([orjson.loads(line) for line in lines])

    def settle(self, parsed: list[dict[str, Any]]) -> None:
        pipe = self.ctx.redis.pipeline(transaction=False)
        for obj in parsed:
            pipe.hmget(self.prefix + obj["custom_id"], *SETTLE_FIELDS)
        now = self.ctx.clock.now_ms()
        day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))  # the cost ledger's day
        rows: list[DeliverRow] = []
        objects: list[tuple[str, bytes]] = []
        sends: list[tuple[int, str, ReplyTarget, dict[str, Any]]] = []
        wasted: list[tuple[str, str, str, int, str]] = []
        for obj, rec in zip(parsed, pipe.execute(), strict=True):
            pcid, result = obj["custom_id"], obj["result"]
            state, bid, tenant, custom_id, reply_to, queued_at, attempts, cancel, path = (text(v) for v in rec)
            if bid != self.bid:
                self.report.stale += 1
                logger.warning("result.stale", batch_id=self.bid, provider_custom_id=pcid)
                continue
            if state not in ("submitted", "ended", "batched"):
                self.report.skipped += 1
                if path == "hedged" and tenant and result.get("type") == "succeeded":  # the real-time answer won
                    wasted.append(self._loser(pcid, tenant, result))
                continue
            assert tenant is not None and custom_id is not None
            rtype, etype = str(result.get("type")), error_type(result)
            entry = self._entry(rtype, etype, error_message(result), now)
            decision = self.policy.decide(rtype, etype, int(attempts or 0), bool(cancel))
            if decision.action is RETRY:
                rows.append(DeliverRow.redrive(pcid, decision.reason, custom_id, tenant, entry))
                logger.debug("request.redriven", custom_id=custom_id, tenant=tenant, batch_id=self.bid,
                             reason=decision.reason, attempt=int(attempts or 0) + 1)
                continue
            outcome = decision.outcome
            if outcome in ("errored", "expired"):  # a final failure: the only per-request ERROR line
                logger.error("request.failed", custom_id=custom_id, tenant=tenant, batch_id=self.bid,
                             outcome=outcome, error_type=etype or None, attempts=int(attempts or 0) + 1)
            model, cost = "", ""
            if rtype == "succeeded":  # errored, canceled and expired requests are not billed
                message = result.get("message") or {}
                model = str(message.get("model", ""))
                self.models.add(model)
                cost = cost_field(self.ctx.prices, model, message.get("usage") or {}, self._first_unpriced)
                if self.realtime and cost not in ("", UNPRICED):
                    cost = "rt:" + cost.split(":")[1]
            key = result_key(self.ctx.settings, tenant, custom_id) if self.s3 else ""
            fields = {"custom_id": custom_id, "tenant": tenant, "outcome": outcome, "s3_key": key}
            if self.s3:
                objects.append((key, result_object(
                    {**fields, "batch_id": self.bid, "provider_batch_id": self.batch.get(B.PROVIDER_ID),
                     "attempts": int(attempts or 0) + 1, "queued_at": iso(queued_at),
                     "cost_usd": cost_usd(cost),
                     "submitted_at": iso(self.batch.get(B.SUBMITTED_AT)), "ended_at": iso(self.batch.get(B.ENDED_AT)),
                     "delivered_at": iso(now),
                     "answered_by": "realtime" if self.realtime else "batch"},  # deadlines.md
                    result, pcid)))
            action, stream = "D", ""
            try:
                target = check_reply_to(reply_to, self.ctx.settings.key_prefix) if reply_to else None
            except InvalidRequest as exc:  # stored before a rule tightened: that request's failure alone
                target, action, stream = None, "U", f"{reply_to}: {exc.rule}"
            if target and target.external:  # webhook, SQS: the delivery tasks send it (workers/delivery.py)
                action = "W"
            elif target and target.kind == "celery":
                # at least once: the key (stable across replays, new for a resubmission) lets downstream dedupe
                sends.append((len(rows), pcid, target, {**fields, "batch_id": self.bid, "result": result,
                                                         "idempotency_key": f"{tenant}:{custom_id}:{queued_at}"}))
            elif target:
                stream = target.name
            rows.append(DeliverRow(pcid, action, outcome, key, stream, custom_id, tenant, orjson.dumps(result), entry,
                                   model, cost))
        if wasted:
            self.ctx.scripts.waste(day, wasted)
        if objects and self.s3:
            self.s3.put_many(objects)
        for index, error in send_all(self.ctx, self.ctx.reply_sender, sends):
            rows[index] = dataclasses.replace(rows[index], action="U", stream=error)
        self.ctx.crash_point("mid_delivery")
        if rows:
            s = self.ctx.settings
            delivered, retried, failed, handed = self.ctx.scripts.deliver(self.bid, now, s.record_ttl_seconds, day,
                                                                          s.reply_stream_maxlen, rows,
                                                                          self.ctx.delivery_hold_until(now))
            if handed:
                self.report.handed += handed
                self.ctx.dispatch_deliveries([row.rid for row in rows if row.action == "W"])
            self.report.delivered += delivered
            self.report.retried += retried
            by_rid = {row.rid: row for row in rows}
            for rid, error in failed:
                row = by_rid[rid]
                self.report.undeliverable += 1
                logger.error("request.undeliverable", custom_id=row.custom_id, tenant=row.tenant, batch_id=self.bid,
                             outcome=row.outcome, error=error)

    def _loser(self, rid: str, tenant: str, result: dict[str, Any]) -> tuple[str, str, str, int, str]:
        """A batch answer not delivered (its hedge won): what it cost at batch price, to count as wasted."""
        message = result.get("message") or {}
        model = str(message.get("model", ""))
        cost = self.ctx.prices.cost_micros(model, message.get("usage") or {})
        return rid, tenant, model, cost.batch_micros if cost else 0, "batch"

    def _first_unpriced(self, model: str) -> bool:
        """Whether this is the deployment's first report of `model` as unpriced today."""
        return bool(self.ctx.redis.set(self.ctx.keys.unpriced_logged(model), 1, nx=True, ex=86400))

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one Fanout per batch; the same entry for most lines
    def _entry(self, rtype: str, etype: str, message: str | None, now: int) -> bytes:
        """The history entry of this attempt (one JSON line in the record's `h` field)."""
        return orjson.dumps({"batch_id": self.bid, "provider_batch_id": self.batch.get(B.PROVIDER_ID),
                             "result": rtype, "error_type": etype or None, "error_message": message, "at": iso(now)})

    def close(self) -> None:
        if self.s3:
            self.s3.close()


MAX_SHORT_READS = 3
SHORT_READ_RETRY_SECONDS = 5.0  # a cut stream is read again this much later (the collect task's retry)
NO_RESULT = {"type": "errored", "error": {"type": "error", "error": {
    "type": "api_error", "message": "batchline: no result line for this request in the batch's results"}}}
RESULTS_UNAVAILABLE = "results_unavailable"
STANDING_ALERT_SECONDS = 7 * 86400


def unavailable_line(reason: str) -> dict[str, Any]:
    """The final outcome of a request whose batch's results cannot be had (404 after retries, archived)."""
    return {"type": "errored", "error": {"type": "error", "error": {
        "type": RESULTS_UNAVAILABLE, "message": f"batchline: the batch's results are unavailable ({reason})"}}}


def settle_missing(ctx: Context, bid: str, fan: Fanout, line: dict[str, Any] = NO_RESULT) -> None:
    """Requests of the batch that got no result line (a file read short, or an adopted batch that
    proved not to hold them) are re-driven like a transient error, within the attempt budget; with
    `RetryPolicy.final_only()` they get `line` as their final outcome."""
    k = ctx.keys
    rids = texts(ctx.redis.lrange(k.batch_members(bid), 0, -1))
    for i in range(0, len(rids), 1000):
        part = rids[i : i + 1000]
        pipe = ctx.redis.pipeline(transaction=False)
        for rid in part:
            pipe.hmget(k.request(rid), R.STATE, R.BATCH)
        missing = [rid for rid, (state, owner) in zip(part, pipe.execute(), strict=True)
                   if owner == bid.encode() and state in (b"submitted", b"ended")]
        if missing:
            logger.warning("batch.results_missing", batch_id=bid, requests=len(missing))
            fan.settle([{"custom_id": rid, "result": line} for rid in missing])


def results_404(ctx: Context, bid: str) -> str:
    """A 404 on an ended batch's results: retried (RetryableError, with a growing delay) a bounded
    number of times, then the reason its requests get as their final outcome."""
    tries = int(ctx.redis.hincrby(ctx.keys.batch(bid), "results_404s", 1))
    if tries <= ctx.settings.results_404_retries:
        raise RetryableError(f"results of {bid}: 404 ({tries} of {ctx.settings.results_404_retries} retries)",
                             retry_after=min(30.0, float(2 ** (tries - 1))))
    return f"404 after {tries} tries"


def settle_unavailable(ctx: Context, bid: str, fan: Fanout, reason: str) -> None:
    """Every request still in the batch ends `errored` / `results_unavailable`; an alert stays up."""
    fan.policy = RetryPolicy.final_only()
    settle_missing(ctx, bid, fan, unavailable_line(reason))
    pipe = ctx.redis.pipeline()
    pipe.hset(ctx.keys.standing_alerts, f"{RESULTS_UNAVAILABLE}:{bid}", f"results unavailable: {reason}")
    pipe.expire(ctx.keys.standing_alerts, STANDING_ALERT_SECONDS)
    pipe.execute()
    logger.error("batch.results_unavailable", batch_id=bid, provider_batch_id=fan.batch.get(B.PROVIDER_ID),
                 reason=reason, requests=fan.report.delivered)


class CollectLease:
    """This collector's lease on one ended batch: taken over from its hand-off, renewed per chunk."""

    def __init__(self, ctx: Context, bid: str) -> None:
        self.ctx, self.bid, self.owner = ctx, bid, new_owner()

    def _take(self, take_over: str) -> bool:
        now = self.ctx.clock.now_ms()
        until = now + int(self.ctx.settings.collect_lease_seconds * 1000)
        return self.ctx.scripts.lease(self.ctx.keys.batch(self.bid), self.owner, now, until, state="ended",
                                      take_over=take_over)

    def acquire(self) -> bool:
        return self._take(HANDOFF)

    def hand_back(self) -> None:
        """Turn this collect lease into a hand-off again: a retry of the task takes it over."""
        now = self.ctx.clock.now_ms()
        self.ctx.scripts.lease(self.ctx.keys.batch(self.bid), new_owner(HANDOFF), now,
                               handoff_until(self.ctx.settings, now), state="ended", take_over=self.owner)

    def drop(self) -> None:
        """Let go at once (this collector failed): the next sweep hands the batch off again."""
        try:
            now = self.ctx.clock.now_ms()
            self.ctx.scripts.lease(self.ctx.keys.batch(self.bid), self.owner, now, now, state="ended")
        except redis.RedisError:
            pass  # Redis is gone too: the lease runs out by itself

    def renew(self) -> None:
        """Raises `LeaseLost` once another collector took the batch over (ours had expired)."""
        if not self._take(""):
            raise LeaseLost(f"collect lease on {self.bid} taken over")


def collect(ctx: Context, bid: str) -> CollectReport:
    """Deliver every result of an ended batch. One collector per batch at a time (a lease)."""
    k = ctx.keys
    lease = CollectLease(ctx, bid)
    if not lease.acquire():
        state = text(ctx.redis.hget(k.batch(bid), B.STATE))
        if state == "ended":
            return CollectReport(bid, status="busy")
        ctx.redis.zrem(k.ended, bid)  # a leftover of a collector that died after its last write
        return CollectReport(bid, status=f"not ended ({state})")
    batch = text_map(ctx.redis.hgetall(k.batch(bid)))
    try:
        return _stream(ctx, bid, batch, lease)
    except RetryableError:
        lease.hand_back()  # the task's retry takes it over
        raise
    except LeaseLost:
        raise  # no longer ours
    except (anthropic.APIStatusError, anthropic.APIConnectionError, httpx2.TransportError) as exc:
        # a 429/5xx, a dropped or cut stream: worth another try soon (the task retries with backoff)
        lease.hand_back()
        wait = classify(exc).retry_after if isinstance(exc, anthropic.APIError) else None
        raise RetryableError(f"results of {bid}: {type(exc).__name__}", retry_after=wait) from exc
    except Exception:
        lease.drop()
        raise


def _read(
    ctx: Context, provider: MessageBatch, batch: dict[str, str], fan: Fanout, raw: RawUpload | None,
    lease: CollectLease,
) -> None:
    settings = ctx.settings
    with results_response(ctx, provider, beta_header(batch.get(B.BETAS, ""))) as resp:  # read as it was created
        chunk: list[bytes] = []
        for line in iter_lines(_tee(resp.iter_bytes(64 * 1024), raw)):
            chunk.append(line)
            fan.report.lines += 1
            if len(chunk) >= settings.results_chunk_lines:
                fan.deliver(chunk)
                chunk = []
                lease.renew()  # raises once not ours
                ctx.crash_point("mid_stream")
        if chunk:
            fan.deliver(chunk)


def _read_all(ctx: Context, bid: str, batch: dict[str, str], fan: Fanout, lease: CollectLease) -> str | None:
    """Stream the results file (tee'd to S3); returns why it cannot be had, or None once read."""
    settings = ctx.settings
    try:
        provider = ctx.anthropic.messages.batches.retrieve(
            batch[B.PROVIDER_ID], extra_headers=beta_header(batch.get(B.BETAS, ""))
        )
        if archived(provider.archived_at, time.time()):  # the provider no longer serves it: do not try
            return "archived"
        raw = RawUpload(ctx.s3, str(settings.s3_bucket), raw_key(settings, bid)) if settings.s3_bucket else None
        try:
            _read(ctx, provider, batch, fan, raw, lease)
            tries = ctx.redis.hincrby(ctx.keys.batch(bid), B.COLLECT_TRIES, 1)
            expected = int(batch.get(B.N, 0))
            if fan.report.lines < expected and tries < MAX_SHORT_READS:
                raise RetryableError(f"results of {bid} cut short: {fan.report.lines} of {expected} lines",
                                     retry_after=SHORT_READ_RETRY_SECONDS)
        except BaseException:
            if raw is not None:
                raw.abort()
            raise
        if raw is not None:
            raw.complete()
    except anthropic.NotFoundError:
        return results_404(ctx, bid)
    return None


def _stream(ctx: Context, bid: str, batch: dict[str, str], lease: CollectLease) -> CollectReport:
    fan = Fanout(ctx, bid, batch)
    gone = batch.get(B.GONE) == "1"  # the provider lost it: no file to read, every request re-driven
    expected = int(batch.get(B.N, 0))
    try:
        unavailable = None if gone else _read_all(ctx, bid, batch, fan, lease)
        lease.renew()  # still ours before settling the rest
        r = fan.report
        if unavailable is not None:
            settle_unavailable(ctx, bid, fan, unavailable)
        elif r.delivered + r.retried + r.skipped < expected:  # some request got no line: find which
            settle_missing(ctx, bid, fan)
    finally:
        fan.close()
    if not finish(ctx, bid, lease.owner, fan.report.lines):
        raise LeaseLost(f"collect lease on {bid} taken over before the finish")
    if batch.get(B.CLAIMED_AT) and fan.models:  # the expected turnaround of deadline requests (deadlines.md)
        turnaround.record(ctx.redis, ctx.keys, fan.models, (ctx.clock.now_ms() - int(batch[B.CLAIMED_AT])) / 1000)
    logger.info("batch.delivered", batch_id=bid, lines=fan.report.lines, delivered=fan.report.delivered,
                skipped=fan.report.skipped, stale=fan.report.stale, retried=fan.report.retried)
    return fan.report


def finish(ctx: Context, bid: str, owner: str, lines: int) -> bool:
    """The batch is settled: ended -> delivered by compare-and-set (`finish.lua`), by the lease's holder."""
    return ctx.scripts.finish(bid, owner, ctx.clock.now_ms(), lines, ctx.settings.record_ttl_seconds)
