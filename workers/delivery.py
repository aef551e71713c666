"""External reply targets (webhooks, SQS): the outbox and its sends.

A result for a webhook or an SQS queue is settled by the result worker into state `delivering` and
put in the outbox (`Keys.outbox`, due now); the fan-out loop never waits on a network target. The
delivery tasks claim due requests (their due time moves past a lease, `outbox_claim.lua`), send
them grouped by host or queue, each group in its own thread (one slow or dead host never delays
another), and settle each (`external.lua`): delivered, retried later (backoff with jitter, at least
Retry-After, within BATCHLINE_WEBHOOK_RETRY_HOURS), or undeliverable (`batchline redeliver`). A
sender that dies leaves its claims due again once the lease runs out: the same request is sent
again with the same webhook-id (its idempotency key), at least once.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from batchline import log
from batchline.errors import InvalidRequest
from batchline.fields import R
from batchline.redis_client import text
from batchline.requests import ReplyTarget, check_reply_to
from batchline.tenants import WebhookSecrets
from batchline.webhooks import WebhookPolicy, WebhookURL, parse_url, sign
from batchline.workers import sqs_sender
from batchline.workers.context import Context
from batchline.workers.webhook_sender import Checked, SendPolicy, SendResult, Verdict, check_now, post

logger = log.get("batchline.delivery")

CLAIM = 500  # requests claimed per round
MAX_GROUPS = 32  # hosts and queues sent to at once by one round
BUSY_RETRY_MS = 500  # a host with all its slots taken: its request is due again this much later
DOWN_RETRY_MS = 2000  # a host that did not answer this round: its untried requests wait this long
FIELDS = (
    R.STATE,
    R.REPLY_TO,
    R.CUSTOM_ID,
    R.TENANT,
    R.OUTCOME,
    R.S3_KEY,
    R.BATCH,
    R.RESULT,
    R.QUEUED_AT,
    R.EXTERNAL_TRIES,
    R.EXTERNAL_SINCE,
)
Row = tuple[str, str, int, str]  # external.lua's (rid, action, due, error)


def body(fields: dict[str, Any], result_json: bytes | str | None) -> bytes:
    """A delivery's JSON body: the fields of a stream entry, with the result as JSON (not a string)."""
    return orjson.dumps({**fields, "result": orjson.Fragment(result_json or b"null")})


def shown(target: ReplyTarget) -> str:
    """A target as errors and logs show it: a URL without its query (it may carry a token)."""
    if target.kind == "webhook":
        parts = urlsplit(target.name)
        return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"
    return f"{target.kind}:{target.name}"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One claimed request, ready to send."""

    rid: str
    target: ReplyTarget
    tenant: str
    custom_id: str
    idempotency_key: str
    fields: dict[str, Any]
    body: bytes
    tries: int
    since: int
    group: str  # sent together: one webhook host (scheme, host, port) or one SQS queue


def group_of(target: ReplyTarget) -> str:
    if target.kind == "webhook":
        parts = urlsplit(target.name)
        return f"webhook:{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"
    return f"sqs:{target.name}"


@dataclass
class DeliveryReport:
    claimed: int = 0
    delivered: int = 0
    retried: int = 0  # failed this time; due again later
    waiting: int = 0  # not tried this round (host busy or down)
    undeliverable: int = 0
    gone: int = 0  # no longer delivering (settled by another sender)
    errors: dict[str, str] = field(default_factory=dict)  # rid -> why undeliverable

    def merge(self, other: DeliveryReport) -> None:
        for name in ("claimed", "delivered", "retried", "waiting", "undeliverable", "gone"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)


def send_policy(ctx: Context) -> SendPolicy:
    s = ctx.settings
    return SendPolicy(s.webhook_retry_hours * 3600, cap_seconds=s.webhook_backoff_max_seconds)


def lease_ms(ctx: Context) -> int:
    """How long a claim holds: a round claimed ahead waits for the round before it, then sends (each
    at most two timeouts deep: a lane starts no send after one), with room to settle."""
    return int((ctx.settings.webhook_timeout_seconds * 5 + 30) * 1000)


@dataclass(frozen=True, slots=True)
class Round:
    """Requests claimed from the outbox, loaded and grouped by host or queue, ready to send."""

    claimed: list[str]
    rows: list[Row]  # settled without a send (no longer delivering, a target that no longer parses)
    groups: dict[str, list[Outgoing]]


def claim(ctx: Context, rids: Sequence[str] = (), limit: int = CLAIM) -> Round:
    """Claim due requests and read their records (one script), grouped by host or queue."""
    now = ctx.clock.now_ms()
    claimed = ctx.scripts.outbox_claim(now, now + lease_ms(ctx), limit, FIELDS, rids)
    rows, groups = _load(ctx, claimed)
    return Round([rid for rid, _ in claimed], rows, groups)


def run_due(ctx: Context, rids: Sequence[str] = (), limit: int = CLAIM) -> DeliveryReport:
    """Claim due requests of the outbox (only `rids`, when given), send them, settle each."""
    return send_round(ctx, claim(ctx, rids, limit))


def run_rounds(ctx: Context, budget_seconds: float, limit: int = CLAIM) -> DeliveryReport:
    """Rounds of due requests until none is left or the budget is spent (beat's outbox tick). While
    a full round sends, the next one is claimed and loaded (their claims never meet)."""
    total = DeliveryReport()
    deadline = time.monotonic() + budget_seconds
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-ahead") as ahead:
        current = claim(ctx, (), limit)
        ctx.redis.delete(ctx.keys.outbox_tick)  # this tick has claimed: beat may send the next one
        while current.claimed:
            full = len(current.claimed) >= limit and time.monotonic() < deadline
            upcoming = ahead.submit(claim, ctx, (), limit) if full else None
            total.merge(send_round(ctx, current))
            if upcoming is None:
                break
            current = upcoming.result()
    return total


def send_round(ctx: Context, batch: Round) -> DeliveryReport:
    report = DeliveryReport(claimed=len(batch.claimed))
    if not batch.claimed:
        return report
    rows = list(batch.rows)
    if batch.groups:
        with ThreadPoolExecutor(max_workers=min(MAX_GROUPS, len(batch.groups)), thread_name_prefix="deliver") as pool:
            for group_rows in pool.map(lambda items: _send_group(ctx, items), batch.groups.values()):
                rows.extend(group_rows)
    codes = ctx.scripts.external(ctx.clock.now_ms(), ctx.settings.record_ttl_seconds, rows)
    for (rid, action, _, error), code in zip(rows, codes, strict=True):
        if code == "gone":
            report.gone += 1
        elif action == Verdict.DELIVERED:
            report.delivered += 1
        elif action == Verdict.NEVER:
            report.undeliverable += 1
            report.errors[rid] = error
            logger.error("request.undeliverable", request_id=rid, error=error)
        elif action == Verdict.LATER:
            report.retried += 1
            logger.info("request.send_retried", request_id=rid, error=error)
        else:
            report.waiting += 1
    return report


def _load(
    ctx: Context, claimed: Sequence[tuple[str, Sequence[bytes | None]]]
) -> tuple[list[Row], dict[str, list[Outgoing]]]:
    """Claimed requests (id, record FIELDS) as sends grouped by host or queue, and rows settled without one."""
    rows: list[Row] = []
    groups: dict[str, list[Outgoing]] = {}
    targets: dict[str, tuple[ReplyTarget, str] | str] = {}  # reply_to -> (target, group) or why not
    for rid, rec in claimed:
        state, reply_to, custom_id, tenant, outcome, s3_key, bid, result, queued_at, tries, since = (
            text(v) for v in rec
        )
        if state != "delivering" or not reply_to or tenant is None or custom_id is None:
            rows.append((rid, "D", 0, ""))  # external.lua answers 'gone' and drops it from the outbox
            continue
        if reply_to not in targets:
            try:
                target = check_reply_to(reply_to, ctx.settings.key_prefix)
                targets[reply_to] = (target, group_of(target))
            except InvalidRequest as exc:
                targets[reply_to] = f"{reply_to[:200]}: {exc.rule}"
        known = targets[reply_to]
        if isinstance(known, str):
            rows.append((rid, Verdict.NEVER, 0, known))
            continue
        target, group = known
        key = f"{tenant}:{custom_id}:{queued_at}"
        fields = {
            "custom_id": custom_id,
            "tenant": tenant,
            "outcome": outcome,
            "s3_key": s3_key or "",
            "batch_id": bid or "",
            "idempotency_key": key,
        }
        item = Outgoing(
            rid,
            target,
            tenant,
            custom_id,
            key,
            fields,
            body(fields, result),
            int(tries or 0),
            int(since or ctx.clock.now_ms()),
            group,
        )
        groups.setdefault(group, []).append(item)
    return rows, groups


def _send_group(ctx: Context, items: list[Outgoing]) -> list[Row]:
    if items[0].target.kind == "sqs":
        return _send_sqs(ctx, items)
    return _send_webhooks(ctx, items)


def _settle(ctx: Context, item: Outgoing, result: SendResult, policy: SendPolicy) -> Row:
    if result.verdict is Verdict.DELIVERED:
        return (item.rid, "D", 0, "")
    where = shown(item.target)
    if result.verdict is Verdict.NEVER:
        return (item.rid, "U", 0, f"{where}: {result.error}")
    now = ctx.clock.now_ms()
    due = policy.next_due(now, item.since, item.tries + 1, result.retry_after)
    if due is None:
        hours = policy.window_seconds / 3600
        return (item.rid, "U", 0, f"{where}: gave up after {item.tries + 1} tries over {hours:g} h: {result.error}")
    return (item.rid, "L", due, f"{where}: {result.error}")


def _send_webhooks(ctx: Context, items: list[Outgoing]) -> list[Row]:
    """One host's requests, sent by up to BATCHLINE_WEBHOOK_MAX_CONCURRENCY lanes, each holding one of
    the host's slots (across processes) while it sends one request after another."""
    s = ctx.settings
    bound = s.webhook_max_concurrency
    # a slow host's lanes stop starting sends after one timeout: every send ends well inside the claim's lease
    deadline = time.monotonic() + s.webhook_timeout_seconds
    policy, retries = WebhookPolicy.of(s), send_policy(ctx)
    live = {t: WebhookSecrets(ctx.redis, ctx.keys).live(t, ctx.clock.now_ms()) for t in {i.tenant for i in items}}
    # each URL's form, and its host resolved and every address checked now, once for this round's
    # sends (each connects to that checked address; the next round looks again)
    forms: dict[str, WebhookURL | str] = {}
    checked: dict[str, Checked | SendResult] = {}
    for url in {i.target.name for i in items}:
        try:
            forms[url] = form = parse_url(url, policy, check_host=False)
        except InvalidRequest as exc:
            forms[url] = exc.rule
            continue
        checked[url] = check_now(url, policy, form=form)
    pending = deque(items)
    down = threading.Event()
    host_port = items[0].group.removeprefix("webhook:")
    slots = ctx.keys.host_slots(host_port)

    def one(item: Outgoing) -> Row:
        if not live[item.tenant]:
            why = f"tenant {item.tenant!r} has no webhook secret (batchline tenants webhook-secret {item.tenant})"
            return (item.rid, "U", 0, f"{shown(item.target)}: {why}")
        form = forms[item.target.name]
        if isinstance(form, str):  # e.g. http:// after BATCHLINE_WEBHOOK_ALLOW_HTTP was turned off
            return (item.rid, "U", 0, f"{shown(item.target)}: {form}")
        now_checked = checked[item.target.name]
        if isinstance(now_checked, SendResult):  # refused, or the host does not resolve
            result = now_checked
        else:
            headers = sign(live[item.tenant], item.idempotency_key, int(time.time()), item.body)
            result = post(
                ctx.http, item.target.name, policy, headers, item.body, s.webhook_timeout_seconds, checked=now_checked
            )
        if result.host_down:
            down.set()
        return _settle(ctx, item, result, retries)

    def lane(_: int) -> list[Row]:
        token, now = secrets.token_hex(8), ctx.clock.now_ms()
        if not ctx.scripts.host_slot(
            host_port, now, now + int((2 * s.webhook_timeout_seconds + 5) * 1000), bound, token
        ):
            return []  # the host has its bound of sends in flight (other workers): left for a later round
        out: list[Row] = []
        try:
            while pending and not down.is_set() and time.monotonic() < deadline:
                try:
                    item = pending.popleft()
                except IndexError:
                    break
                out.append(one(item))
        finally:
            ctx.redis.zrem(slots, token)
        return out

    rows: list[Row] = []
    with ThreadPoolExecutor(max_workers=min(bound, len(items)), thread_name_prefix="webhook") as pool:
        for lane_rows in pool.map(lane, range(min(bound, len(items)))):
            rows.extend(lane_rows)
    wait = DOWN_RETRY_MS if down.is_set() else BUSY_RETRY_MS if len(pending) == len(items) else 0
    now = ctx.clock.now_ms()
    rows.extend((item.rid, "S", now + wait, "") for item in pending)  # not tried this round
    return rows


def _send_sqs(ctx: Context, items: list[Outgoing]) -> list[Row]:
    retries = send_policy(ctx)
    messages = [
        sqs_sender.Message(
            i.rid,
            i.tenant,
            i.idempotency_key,
            i.body,
            sqs_sender.pointer_body(i.fields) if i.fields["s3_key"] else None,
        )
        for i in items
    ]
    sent = sqs_sender.send(ctx.sqs, items[0].target.name, messages, ctx.sqs_urls)
    by_rid = {i.rid: i for i in items}
    rows = []
    for rid, verdict, error in sent:
        item = by_rid[rid]
        error = error.removeprefix(f"sqs:{item.target.name}: ")
        rows.append(_settle(ctx, item, SendResult(verdict, error), retries))
    return rows
