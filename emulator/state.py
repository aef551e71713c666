"""The emulator as one object: settings, clock, store and fault gate, shared by app and handle."""

from __future__ import annotations

import random
import threading
from typing import Any

from .clock import Clock
from .config import EmulatorConfig, with_changes
from .faults import FaultGate
from .foreign import ForeignSchedule
from .store import Store


class EmulatorState:
    """Everything a running emulator knows; the HTTP app and the in-process handle both use it."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.clock = Clock(config.clock_speed)
        self.store = Store(config, self.clock)
        self.gate = FaultGate(config.seed)
        self.foreign_schedule = ForeignSchedule()
        self._lost_lock = threading.Lock()
        self._lost_rng = random.Random(f"{config.seed}:lost-reply")

    def foreign_tick(self) -> None:
        """Create the foreign batches the generator owes the workspace by now."""
        cfg = self.config
        due = self.foreign_schedule.due(cfg.foreign_every_real_seconds, cfg.foreign_batch_requests > 0)
        if due:
            self.store.create_foreign(due, cfg.foreign_batch_requests)

    def lose_create_reply(self) -> bool:
        """Whether this create (already recorded) answers 500 instead (``create_lost_reply_rate``)."""
        rate = self.config.create_lost_reply_rate
        if rate <= 0:
            return False
        with self._lost_lock:
            lost = self._lost_rng.random() < rate
        if lost:
            with self.store.lock:
                self.store.http_faults["create_lost_reply"] += 1
        return lost

    @property
    def config(self) -> EmulatorConfig:
        return self.store.config

    def set_faults(self, **changes: Any) -> EmulatorConfig:
        """Replace some settings at run time (outcome rates, HTTP faults, clock speed, ...)."""
        with self.store.lock:
            new = with_changes(self.store.config, changes)
            if new.clock_speed != self.clock.speed:
                self.clock.set_speed(new.clock_speed)
            self.store.config = new
            return new

    def reset(self) -> None:
        """Clear batches and books (settings stay as they are)."""
        with self.store.lock:
            self.store.reset()
            self.gate.reset(self.store.config.seed)
            self.foreign_schedule.reset()
            self._lost_rng = random.Random(f"{self.store.config.seed}:lost-reply")

    def books(self) -> dict[str, Any]:
        """The books (see ``Store.books``), HTTP faults included."""
        books = self.store.books()
        faults = dict(self.gate.injected)
        for key, n in books["http_faults"].items():
            faults[key] = faults.get(key, 0) + n
        books["http_faults"] = faults
        return books
