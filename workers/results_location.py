"""Where a batch's results file is, and whether it can still be had (pure).

The API hands out an absolute `results_url`, but a stand-in or a gateway may hand out a relative
reference (`/v1/messages/batches/ID/results`), which the SDK joins onto the base URL's *path* (a
base of `http://gw/anthropic` then yields `/anthropic/anthropic/...`, a 404). Here a relative
reference is resolved per RFC 3986 against the API base URL. Behind a gateway the absolute URL
may name a host the workers cannot reach: with `BATCHLINE_RESULTS_FROM_BASE_URL` the documented
path under `ANTHROPIC_BASE_URL` is used instead.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote, urljoin

DEFAULT_BASE_URL = "https://api.anthropic.com"


def documented_url(api_base: str, provider_id: str) -> str:
    """`{base}/v1/messages/batches/{id}/results`, the base's own path kept (as for every endpoint)."""
    return f"{api_base.rstrip('/')}/v1/messages/batches/{quote(provider_id, safe='')}/results"


def results_location(api_base: str | None, provider_id: str, results_url: str | None, from_base_url: bool) -> str:
    """The absolute URL to GET the results from."""
    base = api_base or DEFAULT_BASE_URL
    if from_base_url or not results_url:
        return documented_url(base, provider_id)
    return urljoin(base, results_url)  # RFC 3986 section 5.2; an absolute URL stays as it is


def archived(archived_at: datetime | None, now_s: float) -> bool:
    """Past `archived_at` the provider no longer serves the file (29 days after creation)."""
    return archived_at is not None and archived_at.timestamp() <= now_s
