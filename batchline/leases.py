"""One lease model for every step that holds work: an owner token and an expiry (ms, Redis server
time) in the hash of what is held, checked inside the transition scripts (`lua/_lease.lua`).

- a claim and its create: the aggregator's token, from `claim.lua` until `submitted.lua`/`release.lua`;
- a hand-off: a `handoff:` token from `ended.lua` (or the sweeper), taken over by the collector;
- a collect: the result worker's token, renewed per chunk, cleared by `finish.lua`;
- a polling round: the poller's token on the poll lease key.

Whoever holds a lease may move what it holds; anyone may once it expired (the sweeper passes no
token, so it can only act on expired leases).
"""

from __future__ import annotations

import secrets
from enum import StrEnum

from batchline.config.settings import Settings
from batchline.errors import BatchlineError

HANDOFF = "handoff:"  # owner prefix of a hand-off waiting for its collector


class LeaseState(StrEnum):
    HELD = "held"
    EXPIRED = "expired"
    NONE = "none"


def handoff_until(settings: Settings, now: int) -> int:
    """A hand-off lease lasts a collect lease (at least a sweep): a busy results queue must not fill up
    with copies of the same task."""
    return now + int(max(settings.sweep_interval_seconds, settings.collect_lease_seconds) * 1000)


def new_owner(prefix: str = "") -> str:
    return prefix + secrets.token_hex(8)


def lease_state(owner: str | None, until: str | int | None, now: int) -> LeaseState:
    if not owner:
        return LeaseState.NONE
    return LeaseState.HELD if int(until or 0) > now else LeaseState.EXPIRED


class LeaseLost(BatchlineError):
    """Another holder took the lease over (ours had expired): stop, the new holder carries on."""
