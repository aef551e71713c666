"""The result worker: stream an ended batch's results and fan each line out by custom_id.

Streaming end to end: the body is read in chunks, split into lines, handled `results_chunk_lines`
at a time, and tee'd to a multipart S3 upload; nothing holds the whole file. A worker that dies
is replaced by one that streams again and skips what was delivered (state checked per record in
`deliver.lua`), so no target receives an outcome twice.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import orjson
from anthropic.types.messages import MessageBatch

from batchline import log
from batchline.clock import iso, now_ms
from batchline.errors import InvalidRequest, RetryableError
from batchline.redis_client import text, text_map, texts
from batchline.requests import ReplyTarget, check_reply_to
from batchline.retry import RETRY, RetryPolicy, final_outcome
from batchline.workers.context import Context
from batchline.workers.costing import cost_field, cost_usd
from batchline.workers.lines import iter_lines
from batchline.workers.provider import beta_header, classify
from batchline.workers.results_fetch import results_response
from batchline.workers.results_location import archived
from batchline.workers.sinks import CelerySend, RawUpload, S3Results, raw_key, result_key, result_object
from batchline.workers.targets import send_all

logger = log.get("batchline.results")


@dataclass
class CollectReport:
    batch_id: str
    lines: int = 0
    delivered: int = 0
    skipped: int = 0  # already delivered by an earlier, interrupted run
    retried: int = 0  # sent back to pending for a new batch (transient error, expired)
    stale: int = 0  # lines whose id is not (or no longer) a request of this batch: never delivered
    undeliverable: int = 0  # final, but the reply target refused it (kept for `batchline redeliver`)
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

    def __init__(
        self, ctx: Context, bid: str, batch: dict[str, str], celery_send: CelerySend | None,
        force_final: bool = False
    ) -> None:
        self.ctx, self.bid, self.batch, self.celery_send = ctx, bid, batch, celery_send
        self.force_final = force_final  # no re-drive (a request the API refuses at create)
        self.s3 = S3Results(ctx.s3, ctx.settings) if ctx.settings.s3_bucket else None
        self.prefix = ctx.keys.request("")
        self.policy = RetryPolicy(ctx.settings.max_attempts)
        self.report = CollectReport(bid)

    def deliver(self, lines: list[bytes]) -> None:
        self.settle([orjson.loads(line) for line in lines])

    def settle(self, parsed: list[dict[str, Any]]) -> None:
        pipe = self.ctx.redis.pipeline(transaction=False)
        for obj in parsed:
            pipe.hmget(self.prefix + obj["custom_id"], "s", "b", "t", "c", "rt", "q", "a", "x")
        now = now_ms()
        day = time.strftime("%Y-%m-%d", time.gmtime(now / 1000))  # the cost ledger's day
        objects: list[tuple[str, bytes]] = []
        lines: list[list[Any]] = []  # 11 deliver.lua fields per line; a failed send turns its 'D' into 'U'
        sends: list[tuple[int, str, ReplyTarget, dict[str, Any]]] = []
        for obj, rec in zip(parsed, pipe.execute(), strict=True):
            pcid, result = obj["custom_id"], obj["result"]
            state, bid, tenant, custom_id, reply_to, queued_at, attempts, cancel = (text(v) for v in rec)
            if bid != self.bid:
                self.report.stale += 1
                logger.warning("result.stale", batch_id=self.bid, provider_custom_id=pcid)
                continue
            if state not in ("submitted", "ended", "batched"):
                self.report.skipped += 1
                continue
            assert tenant is not None and custom_id is not None
            rtype, etype = str(result.get("type")), error_type(result)
            entry = self._entry(rtype, etype, error_message(result), now)
            if not self.force_final and self.policy.decide(rtype, etype, int(attempts or 0), bool(cancel)) == RETRY:
                lines.append([pcid, "R", etype or rtype, "", "", custom_id, tenant, "", entry, "", ""])
                logger.debug("request.redriven", custom_id=custom_id, tenant=tenant, batch_id=self.bid,
                             reason=etype or rtype, attempt=int(attempts or 0) + 1)
                continue
            outcome = final_outcome(rtype, bool(cancel))
            if outcome in ("errored", "expired"):  # a final failure: the only per-request ERROR line
                logger.error("request.failed", custom_id=custom_id, tenant=tenant, batch_id=self.bid,
                             outcome=outcome, error_type=etype or None, attempts=int(attempts or 0) + 1)
            model, cost = "", ""
            if rtype == "succeeded":  # errored, canceled and expired requests are not billed
                message = result.get("message") or {}
                model = str(message.get("model", ""))
                cost = cost_field(self.ctx.prices, model, message.get("usage") or {}, self._first_unpriced)
            key = result_key(self.ctx.settings, tenant, custom_id) if self.s3 else ""
            fields = {"custom_id": custom_id, "tenant": tenant, "outcome": outcome, "s3_key": key}
            if self.s3:
                objects.append((key, result_object(
                    {**fields, "batch_id": self.bid, "provider_batch_id": self.batch.get("provider_id"),
                     "attempts": int(attempts or 0) + 1, "queued_at": iso(queued_at),
                     "cost_usd": cost_usd(cost),
                     "submitted_at": iso(self.batch.get("submitted_at")), "ended_at": iso(self.batch.get("ended_at")),
                     "delivered_at": iso(now)},
                    result, pcid)))
            action, stream = "D", ""
            try:
                target = check_reply_to(reply_to, self.ctx.settings.key_prefix) if reply_to else None
            except InvalidRequest as exc:  # stored before a rule tightened: that request's failure alone
                target, action, stream = None, "U", f"{reply_to}: {exc.rule}"
            if target and target.kind == "celery":
                # at least once: the key (stable across replays, new for a resubmission) lets downstream dedupe
                sends.append((len(lines), pcid, target, {**fields, "batch_id": self.bid, "result": result,
                                                         "idempotency_key": f"{tenant}:{custom_id}:{queued_at}"}))
            elif target:
                stream = target.name
            lines.append([pcid, action, outcome, key, stream, custom_id, tenant, orjson.dumps(result), entry, model,
                          cost])
        if objects and self.s3:
            self.s3.put_many(objects)
        for index, error in send_all(self.ctx, self.celery_send, sends):
            lines[index][1], lines[index][4] = "U", error
        self.ctx.crash_point("mid_delivery")
        if lines:
            k = self.ctx.keys
            s = self.ctx.settings
            args: list[Any] = [self.prefix, self.bid, now, s.record_ttl_seconds, day, s.reply_stream_maxlen]
            for line in lines:
                args += line
            delivered, retried, failed = self.ctx.scripts.deliver(
                keys=[k.pending, k.stats, k.counters, k.cost_day(day), k.batch(self.bid), k.cost_days,
                      k.reply_queues, k.undeliverable],
                args=args)
            self.report.delivered += int(delivered)
            self.report.retried += int(retried)
            by_rid = {line[0]: line for line in lines}
            for rid, error in zip(failed[::2], failed[1::2], strict=True):
                line = by_rid[text(rid)]
                self.report.undeliverable += 1
                logger.error("request.undeliverable", custom_id=line[5], tenant=line[6], batch_id=self.bid,
                             outcome=line[2], error=text(error))

    def _first_unpriced(self, model: str) -> bool:
        """Whether this is the deployment's first report of `model` as unpriced today."""
        return bool(self.ctx.redis.set(self.ctx.keys.unpriced_logged(model), 1, nx=True, ex=86400))

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one Fanout per batch; the same entry for most lines
    def _entry(self, rtype: str, etype: str, message: str | None, now: int) -> bytes:
        """The history entry of this attempt (one JSON line in the record's `h` field)."""
        return orjson.dumps({"batch_id": self.bid, "provider_batch_id": self.batch.get("provider_id"),
                             "result": rtype, "error_type": etype or None, "error_message": message, "at": iso(now)})

    def close(self) -> None:
        if self.s3:
            self.s3.close()


MAX_SHORT_READS = 3
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
    `fan.force_final` they get `line` as their final outcome."""
    k = ctx.keys
    rids = texts(ctx.redis.lrange(k.batch_members(bid), 0, -1))
    for i in range(0, len(rids), 1000):
        part = rids[i : i + 1000]
        pipe = ctx.redis.pipeline(transaction=False)
        for rid in part:
            pipe.hmget(k.request(rid), "s", "b")
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
    fan.force_final = True
    settle_missing(ctx, bid, fan, unavailable_line(reason))
    pipe = ctx.redis.pipeline()
    pipe.hset(ctx.keys.standing_alerts, f"{RESULTS_UNAVAILABLE}:{bid}", f"results unavailable: {reason}")
    pipe.expire(ctx.keys.standing_alerts, STANDING_ALERT_SECONDS)
    pipe.execute()
    logger.error("batch.results_unavailable", batch_id=bid, provider_batch_id=fan.batch.get("provider_id"),
                 reason=reason, requests=fan.report.delivered)


def collect(ctx: Context, bid: str, celery_send: CelerySend | None) -> CollectReport:
    """Deliver every result of an ended batch. One collector per batch at a time (a leased lock)."""
    settings, k = ctx.settings, ctx.keys
    lock = ctx.redis.lock(k.collect_lock(bid), timeout=settings.collect_lease_seconds, blocking=False)
    if not lock.acquire(blocking=False):
        return CollectReport(bid, status="busy")
    try:
        batch = text_map(ctx.redis.hgetall(k.batch(bid)))
        if batch.get("state") != "ended":
            ctx.redis.zrem(k.ended, bid)  # a leftover of a collector that died after its last write
            return CollectReport(bid, status=f"not ended ({batch.get('state')})")
        try:
            return _stream(ctx, bid, batch, celery_send, lock)
        except (anthropic.APIStatusError, anthropic.APIConnectionError, httpx2.TransportError) as exc:
            # a 429/5xx, a dropped or cut stream: worth another try soon (the task retries with backoff)
            wait = classify(exc).retry_after if isinstance(exc, anthropic.APIError) else None
            raise RetryableError(f"results of {bid}: {type(exc).__name__}", retry_after=wait) from exc
    finally:
        if lock.owned():
            lock.release()


def _read(
    ctx: Context, provider: MessageBatch, batch: dict[str, str], fan: Fanout, raw: RawUpload | None, lock: Any
) -> None:
    settings = ctx.settings
    with results_response(ctx, provider, beta_header(batch.get("betas", ""))) as resp:  # read as it was created
        chunk: list[bytes] = []
        for line in iter_lines(_tee(resp.iter_bytes(64 * 1024), raw)):
            chunk.append(line)
            fan.report.lines += 1
            if len(chunk) >= settings.results_chunk_lines:
                fan.deliver(chunk)
                chunk = []
                lock.extend(settings.collect_lease_seconds, replace_ttl=True)  # raises once not ours
                ctx.crash_point("mid_stream")
        if chunk:
            fan.deliver(chunk)


def _read_all(ctx: Context, bid: str, batch: dict[str, str], fan: Fanout, lock: Any) -> str | None:
    """Stream the results file (tee'd to S3); returns why it cannot be had, or None once read."""
    settings = ctx.settings
    try:
        provider = ctx.anthropic.messages.batches.retrieve(
            batch["provider_id"], extra_headers=beta_header(batch.get("betas", ""))
        )
        if archived(provider.archived_at, time.time()):  # the provider no longer serves it: do not try
            return "archived"
        raw = RawUpload(ctx.s3, str(settings.s3_bucket), raw_key(settings, bid)) if settings.s3_bucket else None
        try:
            _read(ctx, provider, batch, fan, raw, lock)
            tries = ctx.redis.hincrby(ctx.keys.batch(bid), "collect_tries", 1)
            expected = int(batch.get("n", 0))
            if fan.report.lines < expected and tries < MAX_SHORT_READS:
                raise RetryableError(f"results of {bid} cut short: {fan.report.lines} of {expected} lines")
        except BaseException:
            if raw is not None:
                raw.abort()
            raise
        if raw is not None:
            raw.complete()
    except anthropic.NotFoundError:
        return results_404(ctx, bid)
    return None


def _stream(
    ctx: Context, bid: str, batch: dict[str, str], celery_send: CelerySend | None, lock: Any
) -> CollectReport:
    settings = ctx.settings
    fan = Fanout(ctx, bid, batch, celery_send)
    gone = batch.get("gone") == "1"  # the provider lost it: no file to read, every request re-driven
    expected = int(batch.get("n", 0))
    try:
        unavailable = None if gone else _read_all(ctx, bid, batch, fan, lock)
        lock.extend(settings.collect_lease_seconds, replace_ttl=True)  # still ours before settling the rest
        r = fan.report
        if unavailable is not None:
            settle_unavailable(ctx, bid, fan, unavailable)
        elif r.delivered + r.retried + r.skipped < expected:  # some request got no line: find which
            settle_missing(ctx, bid, fan)
    finally:
        fan.close()
    lock.extend(settings.collect_lease_seconds, replace_ttl=True)
    finish(ctx, bid, fan.report.lines)
    logger.info("batch.delivered", batch_id=bid, lines=fan.report.lines, delivered=fan.report.delivered,
                skipped=fan.report.skipped, stale=fan.report.stale, retried=fan.report.retried)
    return fan.report


def finish(ctx: Context, bid: str, lines: int) -> None:
    """The batch is settled: mark it, drop it from the hand-off set and its member list, keep its
    record (costs, ids) as long as its requests' records."""
    k = ctx.keys
    pipe = ctx.redis.pipeline(transaction=True)
    pipe.hset(k.batch(bid), mapping={"state": "delivered", "delivered_at": now_ms(), "lines": lines})
    pipe.zrem(k.ended, bid)
    pipe.delete(k.batch_members(bid))
    pipe.expire(k.batch(bid), ctx.settings.record_ttl_seconds)
    pipe.execute()
