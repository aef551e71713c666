"""The Celery app, built by a function from settings. Tasks are thin adapters over plain functions.

Celery carries batch-level work only (pack, poll, sweep, collect); requests are Redis records.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from celery import Celery
from kombu import Queue

from batchline import log
from batchline.config.settings import Settings
from batchline.errors import RetryableError
from batchline.workers import aggregator, poller, results, sweeper
from batchline.workers.context import current

QUEUES = {
    "aggregator": "batchline.aggregator",
    "poller": "batchline.poller",
    "results": "batchline.results",
}
PACK, POLL, SWEEP, COLLECT = (
    "batchline.aggregator.pack", "batchline.poller.poll", "batchline.poller.sweep", "batchline.results.collect",
)
PING = "batchline.health.ping"
COLLECT_RETRIES = 8  # prompt retries of a collect on a transient error, before the sweeper's hand-off


def collect_backoff(tries: int, retry_after: float | None) -> float:
    """Seconds before the next collect try: the provider's `retry-after`, else 0.5 s doubling, at most 30."""
    return min(30.0, retry_after if retry_after is not None else 0.5 * 2**tries)


def create_app(settings: Settings) -> Celery:
    log.configure(settings.log_level, settings.log_format)
    app = Celery("batchline", broker=settings.redis_url, set_as_current=False)
    app.conf.update(
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
        broker_transport_options={"visibility_timeout": 3600},
        task_queues=[Queue(q) for q in QUEUES.values()],
        task_default_queue=QUEUES["results"],
        task_routes={PACK: {"queue": QUEUES["aggregator"]}, POLL: {"queue": QUEUES["poller"]},
                     SWEEP: {"queue": QUEUES["poller"]}, COLLECT: {"queue": QUEUES["results"]}},
        beat_scheduler="celery.beat:Scheduler",
        beat_schedule={
            "pack": {"task": PACK, "schedule": timedelta(seconds=settings.pack_interval_seconds),
                     "options": {"expires": max(1.0, settings.pack_interval_seconds * 2)}},
            "poll": {"task": POLL, "schedule": timedelta(seconds=settings.poll_interval_seconds),
                     "options": {"expires": max(1.0, settings.poll_interval_seconds * 2)}},
            "sweep": {"task": SWEEP, "schedule": timedelta(seconds=settings.sweep_interval_seconds),
                      "options": {"expires": max(1.0, settings.sweep_interval_seconds * 2)}},
        },
    )
    app.conf.batchline_settings = settings
    register_tasks(app, settings)
    return app


def celery_sender(app: Celery) -> Any:
    """Deliver an outcome to a `celery:TASK[@QUEUE]` reply target through this app's broker."""

    def send(task: str, queue: str | None, payload: dict[str, Any]) -> None:
        # The task id is derived from the request: downstream can use it as its idempotency key.
        # kwargsrepr: task events (Flower, the event bus) must not carry the completion text.
        redacted = {k: v for k, v in payload.items() if k != "result"}
        app.send_task(task, kwargs=payload, queue=queue, task_id=f"batchline-{payload['idempotency_key']}",
                      kwargsrepr=repr({**redacted, "result": "<redacted>"}))

    return send


def register_tasks(app: Celery, settings: Settings) -> None:
    def ctx() -> Any:
        return current(settings, app)

    def hand_off(bid: str) -> None:
        app.send_task(COLLECT, args=[bid], queue=QUEUES["results"])

    celery_send = celery_sender(app)

    @app.task(name=PACK, bind=True)
    def pack(self: Any) -> int:
        structlog.contextvars.bind_contextvars(task_id=self.request.id)
        return len(aggregator.pack(ctx()))

    @app.task(name=POLL, bind=True)
    def poll(self: Any) -> int:
        structlog.contextvars.bind_contextvars(task_id=self.request.id)
        return len(poller.poll(ctx(), hand_off).ended)

    @app.task(name=SWEEP, bind=True)
    def sweep(self: Any) -> int:
        structlog.contextvars.bind_contextvars(task_id=self.request.id)
        report = sweeper.sweep(ctx(), hand_off)
        return len(report.released) + len(report.adopted) + len(report.handed_off)

    @app.task(name=PING, bind=True)
    def ping(self: Any, key: str) -> None:
        # Liveness that means "work still moves": this ran because the worker consumed a message.
        ctx().redis.set(key, self.request.hostname or "", ex=300)

    @app.task(name=COLLECT, bind=True)
    def collect(self: Any, batch_id: str) -> int:
        structlog.contextvars.bind_contextvars(task_id=self.request.id, batch_id=batch_id)
        try:
            return results.collect(ctx(), batch_id, celery_send).delivered
        except RetryableError as exc:
            tries = int(self.request.retries)
            if tries >= COLLECT_RETRIES:  # the sweeper hands the batch off again later
                raise
            raise self.retry(countdown=collect_backoff(tries, exc.retry_after), max_retries=COLLECT_RETRIES) from exc
