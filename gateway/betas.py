"""The `anthropic-beta` header of a batch create.

The batches endpoint's own beta (`message-batches-*`, which `client.beta.messages.batches` sends)
needs nothing. Betas that change the requests (per batch, as the API applies them) are not carried
through yet: they are refused with a clear error rather than dropped. Hook for the betas work: return
the list from `requested` and hand it to the producer with the batch once batches carry betas.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from .errors import ApiError

ENDPOINT_BETAS = ("message-batches-",)


def requested(headers: Headers) -> list[str]:
    """The request-level betas the client asked for (the header is comma-separated, may repeat)."""
    out: list[str] = []
    for value in headers.getlist("anthropic-beta"):
        out += [b.strip() for b in value.split(",") if b.strip() and not b.strip().startswith(ENDPOINT_BETAS)]
    return out


def check(headers: Headers) -> list[str]:
    betas = requested(headers)
    if betas:
        raise ApiError(400, f"anthropic-beta: {', '.join(betas)} not supported by this gateway yet")
    return betas
