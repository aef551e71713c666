"""Errors in Anthropic's shape: `{"type": "error", "error": {"type": ..., "message": ...}}`."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from batchline import log
from batchline.errors import BatchlineError, InvalidRequest, RetryableError
from batchline.quotas import QuotaExceeded

logger = log.get("batchline.gateway")

#: HTTP status -> Anthropic error type
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    413: "request_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class ApiError(Exception):
    """An error answered to the client as it is."""

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after = status, message, retry_after


def error_response(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
    headers = {"retry-after": str(max(1, round(retry_after)))} if retry_after is not None else None
    body = {"type": "error", "error": {"type": TYPES.get(status, "api_error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def from_exception(exc: Exception) -> ApiError:
    """Map batchline's errors to the API's. Admission control's `Backpressure` (a RetryableError with
    `retry_after`) is 529 `overloaded_error` with `retry-after`, as the API under load."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, QuotaExceeded):
        return ApiError(429, str(exc))
    if isinstance(exc, InvalidRequest):
        return ApiError(400, str(exc))
    if isinstance(exc, RetryableError):
        return ApiError(529, str(exc) or "overloaded", exc.retry_after or 1.0)
    if isinstance(exc, BatchlineError):
        return ApiError(400, str(exc))
    raise exc


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = {404: "not found", 405: "method not allowed"}.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message)


async def on_api_error(request: Request, exc: Exception) -> Response:
    err = from_exception(exc)
    return error_response(err.status, err.message, err.retry_after)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    logger.exception("gateway.error", path=request.url.path, method=request.method)
    return error_response(500, "internal error")
