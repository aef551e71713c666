"""Per-process clients (Redis, Anthropic, S3, Celery producer), built lazily after fork."""

from __future__ import annotations

import contextlib
import os
from functools import cached_property
from typing import Any

import anthropic
import redis

from batchline.clock import Clock, RedisClock
from batchline.config.settings import Settings
from batchline.costs import PriceTable
from batchline.errors import RetryableError
from batchline.hooks import crash_point
from batchline.keys import Keys
from batchline.objects import ObjectStore, S3Store
from batchline.redis_client import connect
from batchline.scripts import Scripts
from batchline.workers.sinks import CelerySend, celery_sender


class Context:
    """Everything a task needs, for one process. Tests build one directly from settings (and a
    `FakeClock` when they need to move time). Building one loads every Lua script."""

    def __init__(self, settings: Settings, celery_app: Any = None, clock: Clock | None = None,
                 reply_sender: CelerySend | None = None) -> None:
        self.settings = settings
        self.celery_app = celery_app
        # the one path to `celery:` reply targets: this app's broker (None without an app)
        self.reply_sender = reply_sender or (celery_sender(celery_app) if celery_app is not None else None)
        self.pid = os.getpid()
        self.clock: Clock = clock if clock is not None else RedisClock(self.redis)
        self.scripts = Scripts(self.redis, self.keys, settings.redis_min_replicas, settings.redis_wait_timeout_ms)

    @cached_property
    def keys(self) -> Keys:
        return Keys(self.settings.key_prefix)

    @cached_property
    def redis(self) -> redis.Redis:
        return connect(self.settings.redis_url, self.settings.key_prefix)


    @cached_property
    def anthropic(self) -> anthropic.Anthropic:
        from batchline.workers.provider import make_client

        return make_client(self.settings)

    @cached_property
    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        cfg = Config(
            max_pool_connections=max(10, self.settings.s3_put_threads),
            retries={"mode": "adaptive", "max_attempts": 8},
        )
        return boto3.client("s3", endpoint_url=self.settings.s3_endpoint_url, config=cfg)

    @cached_property
    def http(self) -> Any:
        """The webhook sends' HTTP client (workers/webhook_sender.py): no redirects, no env proxies."""
        from batchline.workers.webhook_sender import new_client

        return new_client(max(10, self.settings.webhook_max_concurrency * 4))

    @cached_property
    def sqs(self) -> Any:
        """SQS for `sqs:` reply targets: credentials the boto3 way, BATCHLINE_SQS_REGION / _ENDPOINT_URL."""
        import boto3
        from botocore.config import Config

        cfg = Config(max_pool_connections=16, retries={"mode": "adaptive", "max_attempts": 4})
        return boto3.client("sqs", region_name=self.settings.sqs_region, endpoint_url=self.settings.sqs_endpoint_url,
                            config=cfg)

    @cached_property
    def sqs_urls(self) -> dict[str, str]:
        """Queue name -> URL, looked up once per process."""
        return {}

    @cached_property
    def params_store(self) -> ObjectStore:
        """Where large params are kept (batchline/objects.py): the results bucket, this process's client."""
        if not self.settings.s3_bucket:
            raise RetryableError("a request's params are kept by reference but no object store is configured "
                                 "(set BATCHLINE_S3_BUCKET as the producers have it)")
        return S3Store(self.s3, self.settings.s3_bucket)

    @cached_property
    def prices(self) -> PriceTable:
        return PriceTable.load(self.settings.prices_file)

    def delivery_hold_until(self, now: int) -> int:
        """Until when requests handed to the outbox now are held for the send task `dispatch_deliveries`
        sends for them (0: no Celery app, no task is sent, they are due now). One claim lease: a task
        that has not claimed them by then is taken as lost, like a sender that died, and beat's outbox
        tick sends them. Held, they are not due, so the tick neither races the task nor shows as idle."""
        if self.celery_app is None:
            return 0
        from batchline.workers.delivery import lease_ms

        return now + lease_ms(self)

    def dispatch_deliveries(self, rids: list[str]) -> None:
        """Ask a delivery task to send these (just put in the outbox, held for it) now; without a Celery
        app they are due at once, and when the send fails they are released: beat's outbox tick finds
        them due (workers/delivery.py)."""
        if self.celery_app is None or not rids:
            return
        from batchline.workers.app import DELIVER, QUEUES

        for i in range(0, len(rids), 500):
            try:
                self.celery_app.send_task(DELIVER, args=[rids[i : i + 500]], queue=QUEUES["delivery"])
            except Exception as exc:  # the outbox holds them: beat's tick sends them instead
                from batchline import log

                log.get("batchline.delivery").warning("delivery.dispatch_failed", requests=len(rids) - i,
                                                      error=type(exc).__name__)
                with contextlib.suppress(redis.RedisError):  # else their hold runs out, as a lost task's does
                    self.scripts.outbox_release(self.clock.now_ms(), rids[i:])
                return

    def dispatch_realtime(self, rids: list[str]) -> None:
        """One real-time call task per request (deadlines). Without a Celery app, or when a send fails,
        the request's lease runs out and it falls back to its batch (workers/deadlines.py)."""
        if self.celery_app is None or not rids:
            return
        from batchline.workers.app import QUEUES, REALTIME

        for rid in rids:
            try:
                self.celery_app.send_task(REALTIME, args=[rid], queue=QUEUES["results"])
            except Exception as exc:
                from batchline import log

                log.get("batchline.realtime").warning("realtime.dispatch_failed", request_id=rid,
                                                      error=type(exc).__name__)

    def crash_point(self, name: str) -> None:
        crash_point(self.settings.crash_at, self.redis, self.settings.key_prefix, name)


_current: Context | None = None


def current(settings: Settings, celery_app: Any = None) -> Context:
    """This process's context; a fresh one in each forked child."""
    global _current
    if _current is None or _current.pid != os.getpid() or _current.settings is not settings:
        _current = Context(settings, celery_app)
    return _current
