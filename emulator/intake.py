"""Create-time work: the synchronous checks, then the pure per-request analysis.

The synchronous checks are the ones the API answers with a 400 at create; problems inside
``params`` are only recorded, to come back as ``errored`` result lines after the batch ends.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import invalid
from .replies import PromptSize, markers, output_tokens, params_problem, prompt_size, reply_digest

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def parse_body(payload: list[bytes | bytearray]) -> Any:
    """Decode the JSON body, dropping the raw bytes (held in a one-item list) as soon as possible."""
    raw = payload.pop()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"request body is not valid JSON: {exc}") from None
    finally:
        del raw


def check_body(body: Any, max_requests: int) -> list[Any]:
    """The synchronous checks; returns the request items or raises a 400 ``ApiError``."""
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    extra = sorted(set(body) - {"requests"})
    if extra:
        raise invalid(f"{extra[0]}: Extra inputs are not permitted")
    items = body.get("requests")
    if not isinstance(items, list):
        raise invalid("requests: Field required (a list)")
    if not 1 <= len(items) <= max_requests:
        raise invalid(f"requests: must hold between 1 and {max_requests} items, got {len(items)}")
    seen: set[str] = set()
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid(f"requests.{n}: Input should be an object")
        extra = sorted(set(item) - {"custom_id", "params"})
        if extra:
            raise invalid(f"requests.{n}.{extra[0]}: Extra inputs are not permitted")
        for key in ("custom_id", "params"):
            if key not in item:
                raise invalid(f"requests.{n}.{key}: Field required")
        cid = item["custom_id"]
        if not isinstance(cid, str) or not CUSTOM_ID.fullmatch(cid):
            raise invalid(f"requests.{n}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
        if cid in seen:
            raise invalid(f"requests.{n}.custom_id: duplicate custom_id {cid!r} in this batch")
        seen.add(cid)
        if not isinstance(item["params"], dict):
            raise invalid(f"requests.{n}.params: Input should be an object")
    return items


@dataclass(frozen=True)
class Analysis:
    """What the emulator keeps of one request's params."""

    problem: str | None
    model: str
    digest: bytes
    out_tokens: int
    size: PromptSize
    marker_error: str | None
    marker_expire: bool
    slow: bool


def analyze(params: dict[str, Any]) -> Analysis:
    """Validate and digest one request's params (pure; the params can be dropped afterwards)."""
    problem = params_problem(params)
    err, expire, slow = markers(params)
    digest = bytes.fromhex(reply_digest(params))
    if problem is not None:
        return Analysis(problem, str(params.get("model", "")), digest, 0, PromptSize(0), err, expire, slow)
    text = "Reply " + digest.hex()
    out = output_tokens(text, params["max_tokens"])
    return Analysis(None, params["model"], digest, out, prompt_size(params), err, expire, slow)
