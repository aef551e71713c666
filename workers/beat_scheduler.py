"""Beat's scheduler: Celery's own, except that a tick with a check (`TaskSpec.due`) is sent only when
the check sees work, with what it saw as the task's kwargs (the outbox tick is marked on its way
first, `TaskSpec.sending`). Beat still wakes at every interval, so the timing is unchanged; a tick
that would find nothing is simply not a task (nor a Flower event).
A check that fails (Redis unreachable) sends the task anyway: the task decides, as before."""

from __future__ import annotations

import copy
from typing import Any

import redis
from celery.beat import ScheduleEntry, Scheduler

from batchline import log
from batchline.workers.app import BY_NAME, Summary
from batchline.workers.context import current

logger = log.get("batchline.beat")


class DueScheduler(Scheduler):
    """`beat_scheduler` of the batchline app (workers/app.py)."""

    def apply_entry(self, entry: ScheduleEntry, producer: Any = None) -> None:
        spec = BY_NAME.get(entry.task or "")
        if spec is None or spec.due is None:
            super().apply_entry(entry, producer=producer)
            return
        seen = self.check(entry, spec.due)
        if seen is None:
            return  # nothing to do: not sent, so not a task
        if spec.sending is not None:
            self.mark(entry, spec.sending)
        sent = copy.copy(entry)
        sent.kwargs = seen
        super().apply_entry(sent, producer=producer)

    def check(self, entry: ScheduleEntry, due: Any) -> Summary | None:
        try:
            seen: Summary | None = due(current(self.app.conf.batchline_settings, self.app))
        except redis.RedisError as exc:
            logger.warning("beat.check_failed", task=entry.task, error=exc.__class__.__name__)
            return {"check": "failed"}
        return seen

    def mark(self, entry: ScheduleEntry, sending: Any) -> None:
        expires = float((entry.options or {}).get("expires") or 0) or 1.0
        try:
            sending(current(self.app.conf.batchline_settings, self.app), expires)
        except redis.RedisError as exc:  # unmarked: the next check may send another tick, as before
            logger.warning("beat.mark_failed", task=entry.task, error=exc.__class__.__name__)
