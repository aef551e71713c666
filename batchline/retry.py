"""What to do with one result line: deliver it as final, or send the request again.

The provider's advice (docs/batches-api.md): fix and resend `invalid_request_error`; retry the
other errors and `expired` in a new batch. Errored, canceled and expired requests are not billed,
so a re-drive costs nothing but time. Attempts are bounded by `BATCHLINE_MAX_ATTEMPTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

#: Error types of a result line that a new batch may cure.
TRANSIENT_ERRORS = frozenset({"overloaded_error", "api_error", "timeout_error", "rate_limit_error"})


class Action(StrEnum):
    DELIVER = "deliver"
    RETRY = "retry"


DELIVER, RETRY = Action.DELIVER, Action.RETRY


@dataclass(frozen=True, slots=True)
class Decision:
    """The whole decision on one line: what to do, why, and the outcome a caller receives when delivered."""

    action: Action
    reason: str  # the error type of an errored line, else its result type ('expired', 'succeeded', ...)
    outcome: str  # succeeded, errored (the final "failed"), canceled or expired


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Which results go again (the transient set) and how often (the attempt budget)."""

    max_attempts: int = 3
    transient: frozenset[str] = TRANSIENT_ERRORS

    @classmethod
    def final_only(cls) -> RetryPolicy:
        """No re-drive at all: for requests the API refused at create."""
        return cls(max_attempts=1)

    def decide(self, result_type: str, error_type: str, attempts_done: int, cancel_requested: bool) -> Decision:
        """`attempts_done` counts provider attempts finished before this one."""
        reason = error_type or result_type
        final = Decision(DELIVER, reason, final_outcome(result_type, cancel_requested))
        if cancel_requested or result_type == "succeeded" or attempts_done + 1 >= self.max_attempts:
            return final
        if result_type in ("expired", "canceled"):  # canceled here means by the provider, not by us
            return Decision(RETRY, reason, final.outcome)
        if result_type == "errored" and error_type in self.transient:
            return Decision(RETRY, reason, final.outcome)
        return final


def final_outcome(result_type: str, cancel_requested: bool) -> str:
    """The outcome a caller receives: succeeded, errored (the final "failed"), canceled or expired."""
    return "canceled" if cancel_requested else result_type
