"""GET a batch's results file through the SDK's HTTP client (auth, headers, no SDK decoder), from
the URL `results_location` resolves. The answer is streamed: read it with `iter_bytes`, then close."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx2
from anthropic.types.messages import MessageBatch

from batchline.workers.context import Context
from batchline.workers.results_location import results_location


@contextmanager
def results_response(
    ctx: Context, batch: MessageBatch, headers: dict[str, str] | None = None
) -> Iterator[httpx2.Response]:
    """The streaming results response of an ended `batch` (SDK errors as usual: 404 -> NotFoundError);
    `headers` are sent too (the batch's `anthropic-beta`)."""
    url = results_location(str(ctx.anthropic.base_url), batch.id, batch.results_url, ctx.settings.results_from_base_url)
    resp = ctx.anthropic.get(
        url,
        cast_to=httpx2.Response,
        stream=True,
        options={"headers": {"Accept": "application/binary", **(headers or {})}},
    )
    try:
        yield resp
    finally:
        resp.close()
