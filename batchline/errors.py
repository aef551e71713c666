"""One error root for batchline, with retryable and permanent branches."""

from __future__ import annotations


class BatchlineError(Exception):
    """Root of every error batchline raises on purpose."""


class ConfigError(BatchlineError):
    """A setting is missing or out of range; the message names the setting and the rule."""



class PermanentError(BatchlineError):
    """Retrying cannot help."""


class InvalidRequest(PermanentError):
    """A request refused at intake. `field` names the offending field, `rule` the rule it broke."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class Conflict(InvalidRequest):
    """The (tenant, custom_id) is already stored with different params or reply_to."""


class RetryableError(BatchlineError):
    """Try again later; `retry_after` (seconds) when the provider said how long."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
