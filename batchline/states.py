"""Request and batch states, with their allowed transitions in one place.

Transitions are applied in Redis by compare-and-set (the Lua scripts check the current state
against the `from` states listed here), so two workers can never both move the same record.
"""

from __future__ import annotations

from enum import StrEnum


class RequestState(StrEnum):
    QUEUED = "queued"  # accepted, waiting in the pending list (again, after a re-drive)
    BATCHED = "batched"  # claimed into a batch not yet created at the provider (or, canceled while queued,
    # into the cancel batch `keys.CANCEL_BATCH`, which never is: a worker delivers its `canceled` outcome)
    SUBMITTED = "submitted"  # inside a provider batch that is in progress
    ENDED = "ended"  # its batch ended; result not yet delivered (shown by status, derived from the batch)
    DELIVERED = "delivered"  # final outcome written to S3 and its reply_to target
    UNDELIVERABLE = "undeliverable"  # final outcome known, its reply target refused it; `batchline redeliver`
    DELIVERING = "delivering"  # final outcome known, being sent to its webhook or SQS target (retried)


REQUEST_TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.QUEUED: frozenset({RequestState.BATCHED}),
    # back to queued: nothing was created; delivered: the API refused it at create (final failure)
    RequestState.BATCHED: frozenset(
        {RequestState.SUBMITTED, RequestState.QUEUED, RequestState.DELIVERED, RequestState.UNDELIVERABLE,
         RequestState.DELIVERING}
    ),
    # back to queued: a re-drive (transient error, expired, no result line) within the attempt budget
    RequestState.SUBMITTED: frozenset(
        {RequestState.ENDED, RequestState.DELIVERED, RequestState.QUEUED, RequestState.UNDELIVERABLE,
         RequestState.DELIVERING}
    ),
    RequestState.ENDED: frozenset({RequestState.DELIVERED, RequestState.QUEUED, RequestState.UNDELIVERABLE,
                                   RequestState.DELIVERING}),
    # a 2xx (or SQS's ok); a 4xx, or retries past BATCHLINE_WEBHOOK_RETRY_HOURS
    RequestState.DELIVERING: frozenset({RequestState.DELIVERED, RequestState.UNDELIVERABLE}),
    # `batchline redeliver`, once the target is fixed (a webhook or SQS target: back to the outbox)
    RequestState.UNDELIVERABLE: frozenset({RequestState.DELIVERED, RequestState.DELIVERING}),
    RequestState.DELIVERED: frozenset(),
}


class BatchState(StrEnum):
    CLAIMED = "claimed"  # requests moved out of pending, body being built (leased)
    CREATING = "creating"  # intent recorded, create call in flight (leased; reconciled if lost)
    SUBMITTED = "submitted"  # provider batch id saved, polled until it ends
    ENDED = "ended"  # provider says ended; handed to a result worker
    DELIVERED = "delivered"  # every result line fanned out
    RELEASED = "released"  # nothing was created; its requests went back to pending


BATCH_TRANSITIONS: dict[BatchState, frozenset[BatchState]] = {
    BatchState.CLAIMED: frozenset({BatchState.CREATING, BatchState.RELEASED}),
    BatchState.CREATING: frozenset({BatchState.SUBMITTED, BatchState.RELEASED}),
    BatchState.SUBMITTED: frozenset({BatchState.ENDED}),
    BatchState.ENDED: frozenset({BatchState.DELIVERED}),
    BatchState.DELIVERED: frozenset(),
    BatchState.RELEASED: frozenset(),
}


def can_move(transitions: dict[RequestState, frozenset[RequestState]] | dict[BatchState, frozenset[BatchState]],
             current: str, target: str) -> bool:
    """True when `current -> target` is allowed by `transitions`."""
    return any(str(source) == current and target in {str(t) for t in targets}
               for source, targets in transitions.items())


def sources(transitions: dict[RequestState, frozenset[RequestState]] | dict[BatchState, frozenset[BatchState]],
            target: str) -> list[str]:
    """The states a record may be in for a move to `target` (what a Lua CAS checks against)."""
    return sorted(str(s) for s, targets in transitions.items() if target in {str(t) for t in targets})
