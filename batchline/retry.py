"""What to do with one result line: deliver it as final, or send the request again.

The provider's advice (docs/batches-api.md): fix and resend `invalid_request_error`; retry the
other errors and `expired` in a new batch. Errored, canceled and expired requests are not billed,
so a re-drive costs nothing but time. Attempts are bounded by `BATCHLINE_MAX_ATTEMPTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Error types of a result line that a new batch may cure.
TRANSIENT_ERRORS = frozenset({"overloaded_error", "api_error", "timeout_error", "rate_limit_error"})

DELIVER, RETRY = "deliver", "retry"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3

    def decide(self, result_type: str, error_type: str, attempts_done: int, cancel_requested: bool) -> str:
        """`attempts_done` counts provider attempts finished before this one."""
        if cancel_requested or result_type == "succeeded":
            return DELIVER
        if attempts_done + 1 >= self.max_attempts:
            return DELIVER
        if result_type in ("expired", "canceled"):  # canceled here means by the provider, not by us
            return RETRY
        if result_type == "errored" and error_type in TRANSIENT_ERRORS:
            return RETRY
        return DELIVER


def final_outcome(result_type: str, cancel_requested: bool) -> str:
    """The outcome a caller receives: succeeded, errored (the final "failed"), canceled or expired."""
    return "canceled" if cancel_requested else result_type
