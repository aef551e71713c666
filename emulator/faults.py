"""HTTP faults on demand: spend cap, requests-per-minute limit, seeded random 429/529/500, latency."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter, deque

from .config import EmulatorConfig
from .errors import ApiError


class FaultGate:
    """Decides, per API call, whether to answer with a fault instead; counts what it injected."""

    def __init__(self, seed: int) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(f"{seed}:http")
        self._calls: deque[float] = deque()
        self.injected: Counter[str] = Counter()

    def reset(self, seed: int) -> None:
        """Re-seed and forget the RPM window and the counts."""
        with self._lock:
            self._rng = random.Random(f"{seed}:http")
            self._calls.clear()
            self.injected.clear()

    def check(self, cfg: EmulatorConfig, operation: str) -> float:
        """Raise the fault to answer for ``operation``, else return the latency to add (real s)."""
        with self._lock:
            if cfg.spend_limit_reached:
                self.injected["spend_limit"] += 1
                raise ApiError(
                    "rate_limit_error",
                    "You have reached your specified API usage limits. You will regain access on the "
                    "first day of next month.",
                    details={"error_code": "enforced_spend_limit_reached"},
                )
            self._check_rpm(cfg)
            targeted = not cfg.fault_operations or operation in cfg.fault_operations
            if not targeted:
                return 0.0
            draw = self._rng.random()
            retry_after = {"retry-after": str(max(1, cfg.retry_after_seconds))}
            acc = cfg.http_429_rate
            if draw < acc:
                self.injected["http_429"] += 1
                raise ApiError(
                    "rate_limit_error",
                    "Number of requests has exceeded your rate limit (emulated).",
                    headers=retry_after,
                )
            acc += cfg.http_529_rate
            if draw < acc:
                self.injected["http_529"] += 1
                raise ApiError("overloaded_error", "Overloaded (emulated).")
            acc += cfg.http_500_rate
            if draw < acc:
                self.injected["http_500"] += 1
                raise ApiError("api_error", "Internal server error (emulated).")
            acc += cfg.http_400_rate
            if draw < acc:
                self.injected["http_400"] += 1
                raise ApiError("invalid_request_error", "Request rejected (emulated: a fault of the whole call).")
            return cfg.latency_real_seconds

    def _check_rpm(self, cfg: EmulatorConfig) -> None:
        if cfg.rpm_limit is None:
            return
        now = time.monotonic()
        while self._calls and now - self._calls[0] >= 60.0:
            self._calls.popleft()
        if len(self._calls) >= cfg.rpm_limit:
            wait = math.ceil(60.0 - (now - self._calls[0]))
            self.injected["rpm_limit"] += 1
            raise ApiError(
                "rate_limit_error",
                f"Number of requests has exceeded your per-minute rate limit ({cfg.rpm_limit}).",
                headers={"retry-after": str(max(1, wait))},
            )
        self._calls.append(now)
