"""Synthetic but checkable replies: text derived from the request, plausible token counts.

Everything here is pure: the same ``params`` always give the same text and counts, so a test
can recompute what each caller should have received.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MARKER = re.compile(r"\[\[emulator:(error=([a-z_]+)|expire|slow)\]\]")
KNOWN_PARAM_REQUIRED = ("model", "messages", "max_tokens")


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, raw UTF-8: one spelling per JSON value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def reply_digest(params: dict[str, Any]) -> str:
    """First 16 hex chars of sha256 of the canonical JSON of ``params``."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()[:16]


def reply_text(params: dict[str, Any]) -> str:
    """The text of the emulator's reply to a request with these ``params``."""
    return "Reply " + reply_digest(params)


def output_tokens(text: str, max_tokens: int) -> int:
    """Tokens of a reply: about chars/4, never over ``max_tokens``."""
    return max(1, min(max_tokens, math.ceil(len(text) / 4)))


def params_problem(params: Any) -> str | None:
    """Why the API would reject ``params`` asynchronously, or ``None`` when they are fine."""
    if not isinstance(params, dict):
        return "params: Input should be an object"
    for key in KNOWN_PARAM_REQUIRED:
        if key not in params:
            return f"{key}: Field required"
    model = params["model"]
    if not isinstance(model, str) or not model.startswith("claude-"):
        return f"model: {model!r} is not a known model"
    max_tokens = params["max_tokens"]
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Input should be an integer greater than or equal to 1"
    messages = params["messages"]
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if params.get("stream"):
        return "stream: streaming is not supported in a Message Batch"
    if "betas" in params:
        return "betas: per-request betas are not supported; set them on the batch"
    return None


def _blocks(content: Any) -> Iterator[Any]:
    if isinstance(content, str):
        yield {"type": "text", "text": content}
    elif isinstance(content, list):
        yield from content


def iter_blocks(params: dict[str, Any]) -> Iterator[Any]:
    """Every content block of the prompt in order: system first, then each message's."""
    yield from _blocks(params.get("system"))
    for message in params.get("messages") or []:
        if isinstance(message, dict):
            yield from _blocks(message.get("content"))


def _chars(block: Any) -> int:
    if isinstance(block, dict) and isinstance(block.get("text"), str):
        return len(block["text"])
    return len(canonical_json(block)) if isinstance(block, dict) else 0


def markers(params: dict[str, Any]) -> tuple[str | None, bool, bool]:
    """(error type, expire, slow) from ``[[emulator:...]]`` markers in any text block."""
    error: str | None = None
    expire = slow = False
    for block in iter_blocks(params):
        text = block.get("text") if isinstance(block, dict) else None
        if not isinstance(text, str) or "[[emulator:" not in text:
            continue
        for m in MARKER.finditer(text):
            if m.group(2):
                error = error or m.group(2)
            elif m.group(1) == "expire":
                expire = True
            else:
                slow = True
    return error, expire, slow


@dataclass(frozen=True)
class PromptSize:
    """Input tokens of a prompt, and the cached prefix (if ``cache_control`` is used)."""

    input_tokens: int
    cache_key: bytes | None = None
    cache_tokens: int = 0
    cache_ttl_1h: bool = False


def prompt_size(params: dict[str, Any]) -> PromptSize:
    """Tokens ≈ chars/4; the prefix up to the last block with ``cache_control`` is cacheable."""
    total = 0
    prefix = 0
    last_cc: Any = None
    prefix_blocks = 0
    for i, block in enumerate(iter_blocks(params)):
        total += _chars(block)
        if isinstance(block, dict) and isinstance(block.get("cache_control"), dict):
            prefix, last_cc, prefix_blocks = total, block["cache_control"], i + 1
    tokens = max(1, math.ceil(total / 4))
    if last_cc is None:
        return PromptSize(tokens)
    blocks = list(iter_blocks(params))[:prefix_blocks]
    key = hashlib.sha256(canonical_json([params.get("model"), blocks]).encode()).digest()[:16]
    cached = min(tokens, math.ceil(prefix / 4))
    return PromptSize(tokens - cached, key, cached, last_cc.get("ttl") == "1h")
