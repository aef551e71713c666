"""A request as a producer hands it in: validated and encoded for Redis (pure; no I/O)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

import orjson

from batchline.errors import InvalidRequest
from batchline.keys import request_id

# Matched with fullmatch: `$` alone would let a trailing newline through.
ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
BETA_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}")  # e.g. output-300k-2026-03-24
MAX_BETAS = 20
STREAM_RE = re.compile(r"[A-Za-z0-9_.:{}-]{1,200}")
TASK_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,199}")
QUEUE_RE = re.compile(r"[A-Za-z0-9_.-]{1,200}")
#: Reply targets may not point into batchline's own keys, queues or tasks.
RESERVED = ("batchline.", "celery@", "_kombu", "unacked")
DEFAULT_CELERY_QUEUE = "celery"
MAX_METADATA_BYTES = 16_384
#: JSON around one request in the create body: {"custom_id":"<id>","params":<params>},
ITEM_OVERHEAD = len('{"custom_id":"","params":},')



def _dumps(obj: Any) -> bytes:
    """Canonical JSON (sorted keys, compact, UTF-8): the stored form and the idempotency digest's input."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where a request's outcome goes: a Redis stream, or a Celery task (optionally on a queue)."""

    kind: str  # "redis-stream" | "celery"
    name: str
    queue: str | None = None

    @classmethod
    def parse(cls, text: str, key_prefix: str = "bl") -> ReplyTarget:
        kind, sep, rest = text.partition(":")
        target: ReplyTarget | None = None
        if sep and kind == "redis-stream" and STREAM_RE.fullmatch(rest):
            target = cls(kind, rest)
        elif sep and kind == "celery":
            task, _, queue = rest.partition("@")
            if TASK_RE.fullmatch(task) and (not queue or QUEUE_RE.fullmatch(queue)):
                target = cls(kind, task, queue or DEFAULT_CELERY_QUEUE)
        if target is None:
            raise InvalidRequest(
                "reply_to",
                f"{text!r} must be 'redis-stream:NAME' (NAME of [A-Za-z0-9_.:{{}}-], 1-200) "
                "or 'celery:TASK_NAME[@QUEUE]'",
            )
        for name in (target.name, target.queue or ""):
            if name.startswith((f"{key_prefix}:", *RESERVED)):
                raise InvalidRequest("reply_to", f"{text!r} points into batchline's own keys, queues or tasks")
        return target


class EncodedRequest(NamedTuple):
    """A validated request, serialized once, ready to be written to Redis and into a batch body.
    (A NamedTuple: intake builds one per request, and a tuple is the cheapest immutable record.)"""

    rid: str
    tenant: str
    custom_id: str
    params_json: bytes
    reply_to: str
    metadata_json: bytes
    digest: str
    size: int  # bytes this request adds to a create body
    betas: str = ""  # its beta set, canonical ("a,b": sorted, unique); sent as the batch's anthropic-beta header


@lru_cache(maxsize=1024)
def check_reply_to(text: str, key_prefix: str) -> ReplyTarget:
    """Parse once per distinct target: a submit_many usually names one for every item."""
    return ReplyTarget.parse(text, key_prefix)


def check_betas(value: Any) -> str:
    """A request's betas as their canonical set: sorted, unique, comma-joined ('' for none)."""
    if value is None:
        return ""
    if not isinstance(value, list | tuple):
        raise InvalidRequest("betas", f"must be a list of beta names, got {type(value).__name__}")
    if len(value) > MAX_BETAS:
        raise InvalidRequest("betas", f"at most {MAX_BETAS} betas per request")
    for i, name in enumerate(value):
        if not isinstance(name, str) or not BETA_RE.fullmatch(name):
            raise InvalidRequest(f"betas[{i}]", f"{str(name)[:80]!r} must match ^[a-zA-Z0-9][a-zA-Z0-9._-]{{0,99}}$")
    return ",".join(sorted(set(value)))


def check_id(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(field, f"must be a string, got {type(value).__name__}")
    if not ID_RE.fullmatch(value):
        raise InvalidRequest(field, f"{value[:80]!r} must match ^[a-zA-Z0-9_-]{{1,64}}$")
    return value


@dataclass(frozen=True, slots=True)
class BatchRule:
    """One parameter (or value) the Message Batches API refuses inside a batch (config/batch_rules.json)."""

    field: str
    when: str | tuple[Any, ...]  # "present", "truthy", or the refused values
    rule: str

    def refuses(self, params: dict[str, Any]) -> bool:
        if self.field not in params:
            return False
        value = params[self.field]
        if self.when == "present":
            return True
        if self.when == "truthy":
            return bool(value)
        return isinstance(self.when, tuple) and value in self.when


@lru_cache(maxsize=1)
def batch_rules() -> tuple[BatchRule, ...]:
    data = json.loads(resources.files("batchline.config").joinpath("batch_rules.json").read_text())
    rules = []
    for r in data["refused"]:
        when = r["when"]
        rules.append(BatchRule(r["field"], when if isinstance(when, str) else tuple(when["equals_any"]), r["rule"]))
    return tuple(rules)


def check_params(params: Any) -> None:
    """The shape the Message Batches API needs, checked now rather than hours later."""
    if not isinstance(params, dict):
        raise InvalidRequest("params", f"must be an object, got {type(params).__name__}")
    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("params.model", "is required and must be a non-empty string")
    max_tokens = params.get("max_tokens")
    if type(max_tokens) is not int:
        raise InvalidRequest("params.max_tokens", "is required and must be an integer")
    if max_tokens < 1:
        raise InvalidRequest("params.max_tokens", f"must be >= 1, got {max_tokens}")
    messages = params.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("params.messages", "is required and must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"params.messages[{i}]", "must be an object")
        if message.get("role") not in ("user", "assistant"):
            raise InvalidRequest(f"params.messages[{i}].role", "must be 'user' or 'assistant'")
        if not isinstance(message.get("content"), str | list):
            raise InvalidRequest(f"params.messages[{i}].content", "is required (a string or a list of blocks)")
    for rule in batch_rules():
        if rule.refuses(params):
            raise InvalidRequest(f"params.{rule.field}", rule.rule)


def encode(
    custom_id: Any,
    params: Any,
    *,
    tenant: Any,
    reply_to: Any = None,
    metadata: Any = None,
    betas: Any = None,
    max_bytes: int,
    key_prefix: str = "bl",
) -> EncodedRequest:
    """Validate one request and serialize it. Raises `InvalidRequest` naming the field and rule."""
    check_id("tenant", tenant)
    check_id("custom_id", custom_id)
    check_params(params)
    beta_set = check_betas(betas)
    if reply_to is None:
        reply_to = ""
    elif not isinstance(reply_to, str):
        raise InvalidRequest("reply_to", f"must be a string, got {type(reply_to).__name__}")
    elif reply_to:
        check_reply_to(reply_to, key_prefix)
    try:
        params_bytes = _dumps(params)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest("params", f"must be JSON-serializable ({exc})") from None
    metadata_json = b""
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata", f"must be an object, got {type(metadata).__name__}")
        try:
            metadata_json = _dumps(metadata)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest("metadata", f"must be JSON-serializable ({exc})") from None
        if len(metadata_json) > MAX_METADATA_BYTES:
            raise InvalidRequest("metadata", f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
    rid = request_id(tenant, custom_id)
    size = len(params_bytes) + len(rid) + ITEM_OVERHEAD
    if size > max_bytes:
        raise InvalidRequest("params", f"request is {size} bytes, over the batch byte limit of {max_bytes}")
    identity = params_bytes + b"\x00" + reply_to.encode()
    if beta_set:  # two requests that differ only in betas are different requests
        identity += b"\x00betas:" + beta_set.encode()
    digest = hashlib.blake2b(identity, digest_size=16).hexdigest()
    return EncodedRequest(rid, tenant, custom_id, params_bytes, reply_to, metadata_json, digest, size, beta_set)
