"""The emulator as one object: settings, clock, store and fault gate, shared by app and handle."""

from __future__ import annotations

from typing import Any

from .clock import Clock
from .config import EmulatorConfig, with_changes
from .faults import FaultGate
from .store import Store


class EmulatorState:
    """Everything a running emulator knows; the HTTP app and the in-process handle both use it."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.clock = Clock(config.clock_speed)
        self.store = Store(config, self.clock)
        self.gate = FaultGate(config.seed)

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

    def books(self) -> dict[str, Any]:
        """The books (see ``Store.books``), HTTP faults included."""
        books = self.store.books()
        faults = dict(self.gate.injected)
        for key, n in books["http_faults"].items():
            faults[key] = faults.get(key, 0) + n
        books["http_faults"] = faults
        return books
