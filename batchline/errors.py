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


class Backpressure(RetryableError):
    """Intake refused new requests: a limit of admission control is reached. `limit` names it
    (e.g. 'tenant_queued_requests', the setting BATCHLINE_TENANT_MAX_QUEUED_REQUESTS), `current` and
    `maximum` are its values. From `submit_many`, `report` holds what was stored before it and
    `index` the position of the first item not stored: submit again from there once it drains."""

    def __init__(self, limit: str, current: int, maximum: int, tenant: str | None = None,
                 message: str | None = None) -> None:
        if message is None:
            setting = "BATCHLINE_" + {"memory": "INTAKE_MEMORY_PERCENT"}.get(limit, f"MAX_{limit.upper()}")
            if limit.startswith("tenant_"):
                setting = f"BATCHLINE_TENANT_MAX_{limit.removeprefix('tenant_').upper()} or BATCHLINE_TENANT_LIMITS"
            what = {"memory": "Redis memory (bytes)"}.get(limit, limit.replace("_", " "))
            whose = f"tenant {tenant!r}: " if tenant else ""
            message = (f"backpressure: {whose}{what} at {current:,} of the limit {maximum:,} ({setting}); "
                       "retry once it drains")
        super().__init__(message, retry_after=None)
        self.limit, self.current, self.maximum, self.tenant = limit, current, maximum, tenant
        self.report: object | None = None
        self.index: int | None = None


class NotReplicated(RetryableError):
    """The write is on the primary but not yet on BATCHLINE_REDIS_MIN_REPLICAS replicas: a failover now
    could lose it, so it is not acknowledged. Retrying is safe (every such write is idempotent).
    `result`: what the script answered on the primary."""

    def __init__(self, message: str, result: object = None) -> None:
        super().__init__(message)
        self.result = result


class ParamsUnavailable(PermanentError):
    """A large request's params object is gone from the object store (deleted by hand, or expired):
    that request ends `errored` with `params_unavailable`."""

    def __init__(self, key: str) -> None:
        super().__init__(f"params object {key!r} is not in the object store")
        self.key = key
