"""The Celery app, built by a function from settings. Tasks are thin adapters over plain functions.

Celery carries batch-level work only (pack, poll, sweep, collect); requests are Redis records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from celery import Celery
from kombu import Queue

from batchline import log, redis_url
from batchline.config.settings import Settings
from batchline.errors import NotReplicated, RetryableError
from batchline.leases import LeaseLost
from batchline.workers import aggregator, deadlines, delivery, due, poller, realtime, results, sweeper
from batchline.workers.context import Context, current

Summary = dict[str, Any]

logger = log.get("batchline.app")


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One Celery task: its name, its queue, its beat entry and its adapter, declared once."""

    role: str  # the name's middle part; also the queue's, unless `queued` is False
    short: str
    run: Callable[..., Summary | None]  # (task, ctx, *args, **seen): a thin adapter over a plain function
    every: Callable[[Settings], float] | None = None  # beat: how often (None: not scheduled)
    due: Callable[[Context], Summary | None] | None = None  # beat sends it only when this sees work
    # beat calls it just before it sends the tick, with the tick's expiry (s): a mark that it is on its way
    sending: Callable[[Context, float], None] | None = None
    queued: bool = True  # False: sent to one worker's own queue (`worker_direct`), not a role's

    @property
    def name(self) -> str:
        return f"batchline.{self.role}.{self.short}"


def _hand_off(task: Any) -> Callable[[str], None]:
    spec = TASKS["collect"]
    return lambda bid: task.app.send_task(spec.name, args=[bid], queue=QUEUES[spec.role])


# Each adapter returns what its task did, as a small dict: the task's result in Flower's task list
# (`workers/task_summary.py` says which results count as work). `seen` is what beat's check saw.

def _pack(task: Any, ctx: Context, **seen: Any) -> Summary:
    ctx.dispatch_realtime(deadlines.route_new(ctx).calls)  # before packing: a request too late for a batch
    created = aggregator.pack(ctx)
    return {"batches": [c.batch_id for c in created], "requests": sum(c.requests for c in created),
            "outcomes": [c.outcome for c in created]}


def _poll(task: Any, ctx: Context, **seen: Any) -> Summary:
    report = poller.poll(ctx, _hand_off(task))
    out: Summary = {"open": report.open, "api_calls": report.api_calls, "ended": report.ended}
    if report.skipped or report.failed:
        out["skipped"] = report.skipped or report.failed
    return out


def _sweep(task: Any, ctx: Context, **seen: Any) -> Summary:
    return sweeper.sweep(ctx, _hand_off(task)).summary()


COLLECT_RETRIES = 8  # prompt retries of a collect on a transient error, before the sweeper's hand-off


def collect_backoff(tries: int, retry_after: float | None) -> float:
    """Seconds before the next collect try: the provider's `retry-after`, else 0.5 s doubling, at most 30."""
    return min(30.0, retry_after if retry_after is not None else 0.5 * 2**tries)


def _collect(task: Any, ctx: Context, batch_id: str) -> Summary:
    structlog.contextvars.bind_contextvars(batch_id=batch_id)
    try:
        report = results.collect(ctx, batch_id)
    except RetryableError as exc:  # a results file read short, a 429/5xx or a 404: read it again soon
        tries = int(task.request.retries)
        if tries >= COLLECT_RETRIES:  # the sweeper hands the batch off again later
            raise
        raise task.retry(exc=exc, countdown=collect_backoff(tries, exc.retry_after),
                         max_retries=COLLECT_RETRIES) from exc
    except LeaseLost:  # another collector took the batch over and carries on
        logger.warning("batch.lease_lost", batch_id=batch_id)
        return {"batch_id": batch_id, "status": "lease lost", "delivered": 0}
    return {"batch_id": batch_id, "status": report.status, "lines": report.lines, "delivered": report.delivered,
            "retried": report.retried, "undeliverable": report.undeliverable}


def _deliver(task: Any, ctx: Context, rids: list[str]) -> Summary:
    r = delivery.run_due(ctx, rids)
    return {"claimed": r.claimed, "delivered": r.delivered, "retried": r.retried, "waiting": r.waiting,
            "undeliverable": r.undeliverable}


OUTBOX_ROUND_SECONDS = 20.0  # an outbox tick sends rounds of due requests for at most this long


def _outbox(task: Any, ctx: Context, **seen: Any) -> Summary:
    r = delivery.run_rounds(ctx, OUTBOX_ROUND_SECONDS)
    return {"claimed": r.claimed, "delivered": r.delivered, "retried": r.retried, "waiting": r.waiting,
            "undeliverable": r.undeliverable}


def _route(task: Any, ctx: Context, **seen: Any) -> Summary:
    routed = deadlines.tick(ctx)
    ctx.dispatch_realtime(routed.calls)
    return routed.summary()


def _realtime(task: Any, ctx: Context, rid: str) -> Summary:
    structlog.contextvars.bind_contextvars(request_id=rid)
    done = realtime.answer(ctx, rid, int(task.request.retries))
    if done.status == "retry":  # a 429 or a busy slot: answer() falls back itself after MAX_TRIES
        raise task.retry(countdown=done.retry_after, max_retries=realtime.MAX_TRIES)
    return {"request_id": rid, "status": done.status}


def _ping(task: Any, ctx: Context, key: str) -> None:
    # Liveness that means "work still moves": this ran because the worker consumed a message.
    ctx.redis.set(key, task.request.hostname or "", ex=300)


TASKS: dict[str, TaskSpec] = {spec.short: spec for spec in (
    TaskSpec("aggregator", "pack", _pack, every=lambda s: s.pack_interval_seconds, due=due.pack_due),
    TaskSpec("poller", "poll", _poll, every=lambda s: s.poll_interval_seconds, due=due.poll_due),
    TaskSpec("poller", "sweep", _sweep, every=lambda s: s.sweep_interval_seconds, due=due.sweep_due),
    TaskSpec("aggregator", "route", _route, every=lambda s: s.pack_interval_seconds, due=deadlines.due),
    TaskSpec("results", "collect", _collect),
    TaskSpec("results", "realtime", _realtime),
    TaskSpec("delivery", "send", _deliver),
    TaskSpec("delivery", "outbox", _outbox, every=lambda s: s.delivery_outbox_seconds, due=due.outbox_due,
             sending=due.outbox_tick_sending),
    TaskSpec("health", "ping", _ping, queued=False),
)}
BY_NAME = {spec.name: spec for spec in TASKS.values()}
QUEUES = {spec.role: f"batchline.{spec.role}" for spec in TASKS.values() if spec.queued}
PACK, POLL, SWEEP, COLLECT, PING = (TASKS[t].name for t in ("pack", "poll", "sweep", "collect", "ping"))
DELIVER, OUTBOX, REALTIME = TASKS["send"].name, TASKS["outbox"].name, TASKS["realtime"].name
ROUTE = TASKS["route"].name


def create_app(settings: Settings) -> Celery:
    log.configure(settings.log_level, settings.log_format)
    broker = redis_url.broker(settings.redis_url, settings.key_prefix)
    app = Celery("batchline", broker=broker["broker_url"], set_as_current=False)
    app.conf.update(
        broker_transport=broker.get("broker_transport"),  # cluster mode: workers/broker_cluster.py
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_send_task_events=True,
        worker_direct=True,  # a queue per worker node: `batchline health` pings through it
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600, **broker.get("broker_transport_options", {})},
        broker_use_ssl=broker.get("broker_use_ssl"),
        task_queues=[Queue(q) for q in QUEUES.values()],
        task_default_queue=QUEUES["results"],
        task_routes={spec.name: {"queue": QUEUES[spec.role]} for spec in TASKS.values() if spec.queued},
        beat_scheduler="batchline.workers.beat_scheduler:DueScheduler",  # sends a tick only when work is due
        beat_schedule={
            spec.short: {"task": spec.name, "schedule": timedelta(seconds=spec.every(settings)),
                         "options": {"expires": max(1.0, spec.every(settings) * 2)}}
            for spec in TASKS.values() if spec.every is not None
        },
    )
    app.conf.batchline_settings = settings
    for spec in TASKS.values():
        register(app, settings, spec)
    return app


def register(app: Celery, settings: Settings, spec: TaskSpec) -> None:
    """The Celery task of `spec`: binds the task id to the log context and runs the adapter with this
    process's context (which owns the clients, the clock and the reply sender)."""

    def task(self: Any, *args: Any, **seen: Any) -> Summary | None:
        structlog.contextvars.bind_contextvars(task_id=self.request.id)
        try:
            return spec.run(self, current(settings, app), *args, **seen)
        except NotReplicated as exc:  # too few replicas in sync: the next tick (or hand-off) tries again
            logger.warning("redis.not_replicated", task=spec.name, error=str(exc))
            return {"not_replicated": True}

    app.task(name=spec.name, bind=True, shared=False)(task)
