"""The reconcile decision, pure: was a create whose outcome is unknown made, and which batch is it?

A workspace is shared: other applications create batches too, some of exactly our size, inside our
window. Size and time only narrow the field; a batch is ours only when proven, and the proof is its
result lines (every provider custom_id a request of this very claim), so it exists once the batch
has ended. Nothing here calls anything: the sweeper lists, reads proofs, calls `decide` and applies
the answer atomically. An unproven candidate is never adopted, canceled, deleted or stored.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    ADOPT = "adopt"  # this provider batch is the one the create made: save its id
    WAIT = "wait"  # not yet knowable: look again next sweep (read the proofs asked for first)
    RELEASE = "release"  # nothing was created: the requests go back to the queue


class Proof(StrEnum):
    OURS = "ours"  # every result line names a request of this claim, one line per request
    NOT_OURS = "not_ours"  # some line names something else (another application's batch)


@dataclass(frozen=True, slots=True)
class Intent:
    """What is known of the create: its claim, size and the window in which a batch could appear."""

    batch_id: str
    size: int
    window_start_ms: int  # the intent, less the clock skew allowed against the provider
    window_end_ms: int  # the create's answer (or the intent plus the create timeout), plus skew
    release_after_ms: int  # window end plus the provider's list visibility delay


@dataclass(frozen=True, slots=True)
class Candidate:
    """A provider batch as `list` shows it."""

    provider_id: str
    size: int
    created_at_ms: int
    ended: bool


@dataclass(frozen=True, slots=True)
class Listing:
    """The provider's batches back to the window's start. `complete` is False when paging stopped
    early (a fault, the page budget): then nothing can be released."""

    candidates: tuple[Candidate, ...]
    complete: bool


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    provider_id: str | None = None  # the batch to adopt
    to_prove: tuple[str, ...] = ()  # ended candidates whose result lines should be read


def intent_of(
    batch_id: str,
    size: int,
    intent_at_ms: int,
    answered_at_ms: int | None,
    *,
    create_timeout_ms: int,
    skew_ms: int,
    visibility_ms: int,
) -> Intent:
    """The window of a create: from the intent to its answer when one came (a 5xx or timeout: no
    create is in flight any more), else to the latest moment the create could still have run."""
    end = (answered_at_ms if answered_at_ms is not None else intent_at_ms + create_timeout_ms) + skew_ms
    return Intent(batch_id, size, intent_at_ms - skew_ms, end, end + visibility_ms)


def in_window(intent: Intent, c: Candidate) -> bool:
    return c.size == intent.size and intent.window_start_ms <= c.created_at_ms <= intent.window_end_ms


def decide(
    intent: Intent, listing: Listing, proofs: Mapping[str, Proof], taken: Collection[str], now_ms: int
) -> Decision:
    """Adopt the candidate proven ours; else ask for the proofs that can be read now, or wait for
    candidates still running; release only when the whole window was listed, the visibility delay
    has passed, and every candidate is disproved. `taken`: provider ids already saved for a claim."""
    open_ = [c for c in listing.candidates if in_window(intent, c) and c.provider_id not in taken]
    proven = [c for c in open_ if proofs.get(c.provider_id) is Proof.OURS]
    if proven:
        return Decision(Action.ADOPT, "proven_by_result_lines", proven[0].provider_id)
    unproven = [c for c in open_ if c.provider_id not in proofs]
    to_prove = tuple(c.provider_id for c in unproven if c.ended)
    if to_prove:
        return Decision(Action.WAIT, "proofs_to_read", to_prove=to_prove)
    if unproven:
        return Decision(Action.WAIT, "candidates_running")
    if not listing.complete:
        return Decision(Action.WAIT, "listing_incomplete")
    if now_ms < intent.release_after_ms:
        return Decision(Action.WAIT, "window_open")
    return Decision(Action.RELEASE, "reconciled_not_created")


def prove(custom_ids: Iterable[str], members: Collection[str], size: int) -> Proof:
    """Ours when the lines name exactly the claim's requests, each once; one stranger disproves it.
    Callers may stop reading at the first id not in `members` (the answer cannot change)."""
    seen: set[str] = set()
    for cid in custom_ids:
        if cid not in members or cid in seen:
            return Proof.NOT_OURS
        seen.add(cid)
    return Proof.OURS if len(seen) == size else Proof.NOT_OURS


def listed_back_far_enough(oldest_created_at_ms: int | None, has_more: bool, window_start_ms: int) -> bool:
    """Paging (`after_id`, newest first) can stop once a page reaches past the window's start."""
    return not has_more or (oldest_created_at_ms is not None and oldest_created_at_ms < window_start_ms)
