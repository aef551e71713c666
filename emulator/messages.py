"""`POST /v1/messages`: one real-time Messages call, answered at once with the same reply text a
batch would give the same params (so a real-time answer and a batch answer can be told apart only
by `service_tier`), at standard price. The HTTP faults of the batch endpoints apply (operation
`messages` in `fault_operations`); the books count the calls and their tokens."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .errors import ApiError
from .intake import analyze


def message_reply(params: Any) -> dict[str, Any]:
    """The Message object for `params`, or an `invalid_request_error` naming the field and rule."""
    if not isinstance(params, dict):
        raise ApiError("invalid_request_error", "body: Input should be an object")
    if params.get("stream"):
        raise ApiError("invalid_request_error", "stream: the emulator answers real-time calls whole")
    a = analyze({k: v for k, v in params.items() if k != "stream"})
    if a.problem is not None:
        raise ApiError("invalid_request_error", a.problem)
    if a.marker_error is not None:
        raise ApiError(a.marker_error, "Emulated error for this request (marker in its content).")
    text = "Reply " + a.digest.hex()[:16]
    msg_id = hashlib.blake2b(json.dumps(params, sort_keys=True).encode(), digest_size=12).hexdigest()
    return {
        "id": "msg_" + msg_id,
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": [{"type": "text", "text": text, "citations": None}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": a.size.input_tokens,
            "output_tokens": a.out_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        },
    }
