"""The API's error shape: ``{"type":"error","error":{"type","message"},"request_id"}``."""

from __future__ import annotations

import secrets
from typing import Any

STATUS_OF: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def new_request_id() -> str:
    """A fresh ``req_...`` id, as sent in the ``request-id`` header."""
    return "req_emu" + secrets.token_hex(12)


class ApiError(Exception):
    """An error answer: HTTP status, error type and message, optional details and headers."""

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status if status is not None else STATUS_OF.get(error_type, 400)
        self.headers = headers or {}
        self.details = details

    def body(self, request_id: str | None) -> dict[str, Any]:
        """The JSON body of the answer."""
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"type": "error", "error": error, "request_id": request_id}


def invalid(message: str) -> ApiError:
    """A 400 ``invalid_request_error``."""
    return ApiError("invalid_request_error", message)


def not_found(batch_id: str) -> ApiError:
    """A 404 ``not_found_error`` for a batch."""
    return ApiError("not_found_error", f"message_batch {batch_id!r} not found")
