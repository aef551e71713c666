"""The API's own synchronous checks of a batch create body, and of `/v1/requests` bodies (pure).

A client batch is refused whole when one request is bad, as the Message Batches API does; nothing of
it is stored. Field names are the API's (`requests.3.params.max_tokens`).
"""

from __future__ import annotations

from typing import Any

import orjson

from batchline.errors import InvalidRequest
from batchline.requests import ID_RE, check_params

ITEM_KEYS = frozenset({"custom_id", "params"})


def parse_json(body: bytes) -> Any:
    if not body:
        raise InvalidRequest("body", "is empty; expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("body", f"invalid JSON ({exc})") from None


def batch_requests(body: Any, max_requests: int) -> list[tuple[str, dict[str, Any]]]:
    """The (custom_id, params) pairs of a create body, or `InvalidRequest` naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest("body", "must be a JSON object")
    extra = sorted(set(body) - {"requests"})
    if extra:
        raise InvalidRequest(extra[0], "Extra inputs are not permitted")
    requests = body.get("requests")
    if not isinstance(requests, list):
        raise InvalidRequest("requests", "Field required: a list of {custom_id, params}")
    if not requests:
        raise InvalidRequest("requests", "must contain at least one request")
    if len(requests) > max_requests:
        raise InvalidRequest("requests", f"at most {max_requests} requests per batch here, got {len(requests)}")
    seen: set[str] = set()
    out: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(requests):
        where = f"requests.{i}"
        if not isinstance(item, dict):
            raise InvalidRequest(where, "must be an object")
        unknown = sorted(set(item) - ITEM_KEYS)
        if unknown:
            raise InvalidRequest(f"{where}.{unknown[0]}", "Extra inputs are not permitted")
        cid = item.get("custom_id")
        if not isinstance(cid, str) or not ID_RE.fullmatch(cid):
            raise InvalidRequest(f"{where}.custom_id", "must be a string matching ^[a-zA-Z0-9_-]{1,64}$")
        if cid in seen:
            raise InvalidRequest(f"{where}.custom_id", f"{cid!r} is not unique within the batch")
        seen.add(cid)
        params = item.get("params")
        try:
            check_params(params)
        except InvalidRequest as exc:
            raise InvalidRequest(f"{where}.{exc.field}", exc.rule) from None
        out.append((cid, params))  # type: ignore[arg-type]  # check_params proved it is a dict
    return out


def request_items(body: bytes, content_type: str) -> list[Any]:
    """A `/v1/requests` body: one object, a JSON array, or JSON Lines (one object per line)."""
    if "ndjson" in content_type or "jsonl" in content_type:
        items: list[Any] = []
        for n, line in enumerate(body.split(b"\n"), 1):
            if line.strip():
                try:
                    items.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise InvalidRequest(f"line {n}", f"invalid JSON ({exc})") from None
        if not items:
            raise InvalidRequest("body", "is empty; expected JSON Lines")
        return items
    parsed = parse_json(body)
    if isinstance(parsed, list):
        if not parsed:
            raise InvalidRequest("body", "must contain at least one request")
        return parsed
    if isinstance(parsed, dict):
        return [parsed]
    raise InvalidRequest("body", "must be an object, an array of objects, or JSON Lines")
