"""Settings of the emulator: one frozen dataclass, built directly by tests or from CLI flags."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OPERATIONS: tuple[str, ...] = ("create", "retrieve", "list", "cancel", "delete", "results", "messages")
RESULTS_URL_MODES: tuple[str, ...] = ("absolute", "relative", "unreachable")
ERROR_TYPES: tuple[str, ...] = (
    "invalid_request_error",
    "authentication_error",
    "billing_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "timeout_error",
    "api_error",
    "overloaded_error",
)
HOUR = 3600.0
DAY = 24 * HOUR


@dataclass(frozen=True)
class EmulatorConfig:
    """Every knob of the emulator; each default is safe (no faults, fast batches, real-time clock).

    Durations named ``*_seconds`` are emulated seconds (scaled by ``clock_speed``) unless the
    name says ``real``. Rates are probabilities in [0, 1].
    """

    host: str = "127.0.0.1"
    port: int = 0
    # Lifecycle (emulated seconds). A float, or a (lo, hi) range drawn per batch from the seed.
    processing_seconds: float | tuple[float, float] = 1.0
    cancel_seconds: float = 1.0
    expires_after_seconds: float = DAY
    archive_after_seconds: float = 29 * DAY
    clock_speed: float = 1.0
    seed: int = 0
    # Per-request outcomes, drawn from an RNG seeded by (seed, custom_id, attempt).
    error_rates: Mapping[str, float] = field(default_factory=dict)
    expire_rate: float = 0.0
    # HTTP faults, drawn from an RNG seeded by seed, in order of arrival.
    http_429_rate: float = 0.0
    http_529_rate: float = 0.0
    http_500_rate: float = 0.0
    http_400_rate: float = 0.0  # a 400 for the whole call, whatever it carries (e.g. a rejected header)
    retry_after_seconds: int = 1
    fault_operations: tuple[str, ...] = ()  # empty: the rate faults and latency hit every operation
    latency_real_seconds: float = 0.0
    fresh_404_seconds: float = 0.0
    fresh_404_real_time: bool = False  # count fresh_404_seconds in real rather than emulated seconds
    results_cut_after: int | None = None
    rpm_limit: int | None = None
    queue_limit: int | None = None
    spend_limit_reached: bool = False
    create_lost_reply_rate: float = 0.0  # share of creates that create the batch, then answer 500
    results_404: bool = False  # results of ended batches answer 404 (a URL the client cannot reach)
    # A busy, shared workspace.
    list_page_max: int | None = None  # list pages hold at most this many (fewer than limit; has_more true)
    results_url_mode: str = "absolute"  # absolute | relative (a relative reference) | unreachable (another host)
    mount_path: str = ""  # serve the API under this path too (a gateway's base URL: http://host/anthropic)
    foreign_batch_requests: int = 0  # another application creates batches of this many requests ...
    foreign_every_real_seconds: float = 5.0  # ... this often (real seconds), while the emulator is called
    # Wire format and limits.
    crlf: bool = False
    max_body_bytes: int = 256_000_000
    max_requests: int = 100_000

    def __post_init__(self) -> None:
        validate(self)

    @property
    def processing_range(self) -> tuple[float, float]:
        """The (lo, hi) processing time in emulated seconds."""
        p = self.processing_seconds
        if isinstance(p, int | float):
            return (float(p), float(p))
        lo, hi = p
        return (float(lo), float(hi))

    def replace(self, **changes: Any) -> EmulatorConfig:
        """A copy with ``changes`` applied (unknown names raise ``TypeError``)."""
        return with_changes(self, changes)

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (the control API's view)."""
        out = dataclasses.asdict(self)
        out["error_rates"] = dict(self.error_rates)
        out["fault_operations"] = list(self.fault_operations)
        if isinstance(self.processing_seconds, tuple):
            out["processing_seconds"] = list(self.processing_seconds)
        return out


def with_changes(cfg: EmulatorConfig, changes: Mapping[str, Any]) -> EmulatorConfig:
    """Apply JSON-ish ``changes`` (lists become tuples) to ``cfg``, validating the result."""
    names = {f.name for f in dataclasses.fields(EmulatorConfig)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise TypeError(f"unknown emulator settings: {', '.join(unknown)}")
    fixed: dict[str, Any] = {}
    for key, value in changes.items():
        if key in ("processing_seconds", "fault_operations") and isinstance(value, list):
            value = tuple(value)
        if key == "error_rates":
            value = dict(value or {})
        fixed[key] = value
    return dataclasses.replace(cfg, **fixed)


def validate(cfg: EmulatorConfig) -> None:
    """Raise ``ValueError`` on settings that make no sense."""
    lo, hi = cfg.processing_range
    if lo < 0 or hi < lo:
        raise ValueError("processing_seconds must be >= 0 and lo <= hi")
    if cfg.clock_speed <= 0:
        raise ValueError("clock_speed must be > 0")
    rates = [
        cfg.expire_rate,
        cfg.http_429_rate,
        cfg.http_529_rate,
        cfg.http_500_rate,
        cfg.http_400_rate,
        cfg.create_lost_reply_rate,
    ]
    rates += list(cfg.error_rates.values())
    if any(not 0.0 <= r <= 1.0 for r in rates):
        raise ValueError("rates must lie in [0, 1]")
    if sum(cfg.error_rates.values()) + cfg.expire_rate > 1.0:
        raise ValueError("error_rates and expire_rate must sum to at most 1")
    bad_ops = set(cfg.fault_operations) - set(OPERATIONS)
    if bad_ops:
        raise ValueError(f"unknown operations: {sorted(bad_ops)}")
    bad_types = set(cfg.error_rates) - set(ERROR_TYPES)
    if bad_types:
        raise ValueError(f"unknown error types: {sorted(bad_types)}")
    if cfg.max_body_bytes < 1 or cfg.max_requests < 1:
        raise ValueError("max_body_bytes and max_requests must be >= 1")
    if cfg.list_page_max is not None and cfg.list_page_max < 1:
        raise ValueError("list_page_max must be >= 1")
    if cfg.results_url_mode not in RESULTS_URL_MODES:
        raise ValueError(f"results_url_mode must be one of {', '.join(RESULTS_URL_MODES)}")
    if cfg.mount_path and (not cfg.mount_path.startswith("/") or cfg.mount_path.endswith("/")):
        raise ValueError("mount_path must start with '/' and not end with '/' (e.g. /anthropic)")
    if not 0 <= cfg.foreign_batch_requests <= cfg.max_requests:
        raise ValueError("foreign_batch_requests must lie in [0, max_requests]")
    if cfg.foreign_every_real_seconds <= 0:
        raise ValueError("foreign_every_real_seconds must be > 0")
