"""The packing rule: when to send a batch and how big it may be. Pure; no Redis, no Celery."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_requests: int
    max_bytes: int
    max_wait_ms: int
    max_in_flight: int


@dataclass(frozen=True, slots=True)
class QueueView:
    """What the aggregator sees of the intake at one instant."""

    pending: int
    pending_bytes: int
    oldest_age_ms: int
    in_flight: int


@dataclass(frozen=True, slots=True)
class Take:
    """Claim at most `max_requests` from the head of the queue, cut at `max_bytes` of body."""

    max_requests: int
    max_bytes: int
    reason: str  # "full" or "aged"


def next_batch(view: QueueView, limits: Limits) -> Take | None:
    """Send when a batch is full (by count or bytes) or the oldest request has waited long enough,
    within the provider's queue budget. A full batch waits for a whole budget rather than going
    out small; an aged one takes what the budget allows."""
    budget = limits.max_in_flight - view.in_flight
    if view.pending <= 0 or budget <= 0:
        return None
    size = min(limits.max_requests, budget)
    full = view.pending >= limits.max_requests or view.pending_bytes >= limits.max_bytes
    if full and budget >= min(limits.max_requests, view.pending):
        return Take(size, limits.max_bytes, "full")
    if view.oldest_age_ms >= limits.max_wait_ms:
        return Take(size, limits.max_bytes, "aged")
    return None
