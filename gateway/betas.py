"""The `anthropic-beta` header of a batch create.

The batches endpoint's own beta (`message-batches-*`, which `client.beta.messages.batches` sends)
needs nothing and is dropped. The others change the requests (the API applies them per batch): every
request of the client batch carries them, so batchline packs it only with requests of the same beta
set and sends them as that provider batch's `anthropic-beta`. They are checked as intake checks a
request's `betas`; a bad name is a 400 naming `anthropic-beta`.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from batchline.errors import InvalidRequest
from batchline.requests import check_betas

from .errors import ApiError

ENDPOINT_BETAS = ("message-batches-",)


def requested(headers: Headers) -> list[str]:
    """The request-level betas the client asked for (the header is comma-separated, may repeat)."""
    out: list[str] = []
    for value in headers.getlist("anthropic-beta"):
        out += [b.strip() for b in value.split(",") if b.strip() and not b.strip().startswith(ENDPOINT_BETAS)]
    return out


def check(headers: Headers) -> list[str]:
    """The request-level betas, valid as intake wants them (sorted, unique); ApiError 400 if not."""
    betas = requested(headers)
    try:
        canonical = check_betas(betas)
    except InvalidRequest as exc:
        raise ApiError(400, f"anthropic-beta: {exc.rule}") from None
    return canonical.split(",") if canonical else []
