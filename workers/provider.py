"""The Anthropic SDK as batchline uses it: client construction and error classification."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import anthropic
import httpx2

from batchline.config.settings import Settings
from batchline.errors import ConfigError


def make_client(settings: Settings) -> anthropic.Anthropic:
    """One client per process. Automatic retries are off: a retried create can pay twice, and a
    retry that sleeps `retry-after` inside the SDK holds a worker hostage."""
    if not settings.anthropic_api_key:
        raise ConfigError("ANTHROPIC_API_KEY: required by workers (any value for the emulator)")
    return anthropic.Anthropic(
        api_key=settings.anthropic_api_key,
        base_url=settings.anthropic_base_url,
        max_retries=0,
        timeout=httpx2.Timeout(60.0, connect=10.0),
    )


def beta_header(betas: str | None) -> dict[str, str]:
    """The `anthropic-beta` header of a batch's beta set ("a,b"), as the SDK's `betas=[...]` sends it."""
    return {"anthropic-beta": betas} if betas else {}


class Kind(StrEnum):
    RETRY = "retry"  # nothing was done; try again later (429, 529 and 5xx on reads)
    AMBIGUOUS = "ambiguous"  # a write may or may not have happened (timeout, connection, 5xx)
    ACCOUNT = "account"  # spend cap, billing, auth, permission: pause, retrying cannot help
    TOO_LARGE = "too_large"  # 413
    INVALID = "invalid"  # 400 and other 4xx: the request itself is wrong
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class Classified:
    kind: Kind
    status: int | None
    error_type: str | None
    retry_after: float | None
    message: str
    queue_full: bool = False  # a 429 saying the processing queue is full (the tier's queue limit)


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    raw = exc.response.headers.get("retry-after")
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def classify(exc: BaseException) -> Classified:
    """Map an SDK exception to what batchline should do about it."""
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        etype = err.get("type") if isinstance(err, dict) else None
        code = (err.get("details") or {}).get("error_code") if isinstance(err, dict) else None
        message = str(err.get("message", ""))[:300] if isinstance(err, dict) else ""
        retry_after = _retry_after(exc)
        if code == "enforced_spend_limit_reached" or status in (401, 402, 403) or etype in (
            "billing_error", "authentication_error", "permission_error",
        ):
            kind = Kind.ACCOUNT
        elif status == 413:
            kind = Kind.TOO_LARGE
        elif status == 404:
            kind = Kind.NOT_FOUND
        elif status in (408, 409, 429, 529):
            kind = Kind.RETRY
        elif status >= 500:
            kind = Kind.AMBIGUOUS
        else:
            kind = Kind.INVALID
        queue_full = status == 429 and "queue" in message.lower()  # wording undocumented; it names the queue
        return Classified(kind, status, etype, retry_after, message, queue_full)
    if isinstance(exc, anthropic.APIConnectionError):  # includes APITimeoutError
        return Classified(Kind.AMBIGUOUS, None, None, None, type(exc).__name__)
    raise exc
