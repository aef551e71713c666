"""A request as a producer hands it in: validated and encoded for Redis (pure; no I/O)."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

import orjson

from batchline import deadlines
from batchline.errors import InvalidRequest
from batchline.keys import hash_tag, request_id
from batchline.webhooks import WebhookPolicy, parse_url

# Matched with fullmatch: `$` alone would let a trailing newline through.
ID_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
BETA_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}")  # e.g. output-300k-2026-03-24
MAX_BETAS = 20
STREAM_RE = re.compile(r"[A-Za-z0-9_.:{}-]{1,200}")
TASK_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,199}")
QUEUE_RE = re.compile(r"[A-Za-z0-9_.-]{1,200}")
#: An SQS queue name (standard or FIFO), or its URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)
SQS_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,75}(\.fifo)?|[A-Za-z0-9_-]{1,80}")
SQS_URL_RE = re.compile(r"https?://[A-Za-z0-9.:\[\]-]{1,253}/[0-9A-Za-z_-]{1,64}/(?P<name>[A-Za-z0-9_.-]{1,80})")
#: The strict policy intake applies when not given the deployment's (https only, public addresses only)
STRICT_WEBHOOKS = WebhookPolicy()
#: Reply targets may not point into batchline's own keys, queues or tasks, nor at a key the broker
#: (Celery over kombu's Redis transport) owns: its queues and worker queues, `unacked*`, `_kombu.*`.
RESERVED = ("batchline.", "celery@", "_kombu", "unacked")
DEFAULT_CELERY_QUEUE = "celery"
#: A reply stream may not be named like a broker key: Celery's default and control queues
#: (celery, celery.pidbox, celeryev.*, reply.celery.pidbox) and worker-direct queues (*.dq2).
BROKER_STREAM_NAMES = ("celery",)
BROKER_STREAM_PREFIXES = ("celery.", "celeryev", "reply.celery")
BROKER_STREAM_SUFFIXES = (".dq", ".dq2", ".pidbox")
#: Echoed values in errors are cut to this many characters (a 5 MB reply_to is not echoed whole).
ECHO_CHARS = 200


def echo(value: Any) -> str:
    """`repr` of a value for an error message, cut to ECHO_CHARS characters."""
    if isinstance(value, int) and value.bit_length() > 256:  # repr of a 5,000-digit int raises, and says nothing
        return f"an integer of {value.bit_length()} bits"
    text = repr(value[: ECHO_CHARS + 1] if isinstance(value, str) else value)
    if isinstance(value, str) and len(value) > ECHO_CHARS:
        return f"{text[:ECHO_CHARS]}... ({len(value)} chars)"
    return text if len(text) <= ECHO_CHARS else f"{text[:ECHO_CHARS]}..."


def non_finite(value: Any, path: str) -> str | None:
    """The path of the first NaN or Infinity inside a JSON value (orjson would write it as null)."""
    if isinstance(value, float):
        return None if math.isfinite(value) else path
    if isinstance(value, dict):
        items: Any = ((f"{path}.{str(k)[:60]}", v) for k, v in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for sub, v in items:
        found = non_finite(v, sub)
        if found:
            return found
    return None


def _serialized(field: str, value: Any) -> bytes:
    """Canonical JSON of a params or metadata value; a value JSON cannot carry is refused by name."""
    try:
        data = _dumps(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(field, f"must be JSON-serializable ({exc})") from None
    # NaN and Infinity come out as null: a document of few values (text, base64) is walked, which costs
    # microseconds where a scan of its megabyte for `null` costs one (holding the GIL the PUTs need)
    if (len(data) <= SCAN_BELOW or not _few_floats(value, FEW_VALUES)) and b"null" in data:
        where = non_finite(value, field)
        if where:
            raise InvalidRequest(where, "NaN and Infinity are not valid JSON (use null, a number or a string)")
    return data


SCAN_BELOW = 65536  # bytes of JSON under which the scan for `null` is the cheaper look
FEW_VALUES = 1000  # values walked at most before falling back to the scan


def _few_floats(value: Any, budget: int) -> bool:
    """True when `value` holds at most `budget` values and every float in it is finite."""
    stack = [value]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        v = stack.pop()
        if isinstance(v, float):
            if not math.isfinite(v):
                return False
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list | tuple):
            stack.extend(v)
    return True
MAX_METADATA_BYTES = 16_384
#: JSON around one request in the create body: {"custom_id":"<id>","params":<params>},
ITEM_OVERHEAD = len('{"custom_id":"","params":},')



def _dumps(obj: Any) -> bytes:
    """Canonical JSON (sorted keys, compact, UTF-8): the stored form and the idempotency digest's input."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """Where a request's outcome goes: a Redis stream, a Celery task (optionally on a queue), an HTTPS
    webhook (`name` is the URL) or an SQS queue (`name` is its name or URL)."""

    kind: str  # "redis-stream" | "celery" | "webhook" | "sqs"
    name: str
    queue: str | None = None

    @property
    def key(self) -> str:
        """The Redis key this target writes: the stream itself, or the Celery queue's list."""
        return self.name if self.kind == "redis-stream" else (self.queue or DEFAULT_CELERY_QUEUE)

    @property
    def external(self) -> bool:
        """Sent over the network by the delivery tasks (webhook, SQS), not written into Redis."""
        return self.kind in ("webhook", "sqs")

    @classmethod
    def parse(cls, text: str, key_prefix: str = "bl", stream_prefix: str | None = None,
              policy: WebhookPolicy | None = None) -> ReplyTarget:
        """`policy` None: the URL's form only (at delivery, where the sender checks the address itself)."""
        kind, sep, rest = text.partition(":")
        target: ReplyTarget | None = None
        if sep and kind in ("https", "http"):
            parse_url(text, policy or WebhookPolicy(allow_http=True), check_host=policy is not None)
            return cls("webhook", text)
        if sep and kind == "sqs":
            if not (SQS_NAME_RE.fullmatch(rest) or SQS_URL_RE.fullmatch(rest)):
                raise InvalidRequest("reply_to", f"{echo(text)} must be 'sqs:QUEUE_NAME' (of [A-Za-z0-9_-], 1-80, "
                                     "'.fifo' allowed at the end) or 'sqs:https://sqs.REGION.amazonaws.com/ACCOUNT/NAME'")
            return cls("sqs", rest)
        if sep and kind == "redis-stream" and STREAM_RE.fullmatch(rest):
            target = cls(kind, rest)
        elif sep and kind == "celery":
            task, _, queue = rest.partition("@")
            if TASK_RE.fullmatch(task) and (not queue or QUEUE_RE.fullmatch(queue)):
                target = cls(kind, task, queue or DEFAULT_CELERY_QUEUE)
        if target is None:
            raise InvalidRequest(
                "reply_to",
                f"{echo(text)} must be 'redis-stream:NAME' (NAME of [A-Za-z0-9_.:{{}}-], 1-200), "
                "'celery:TASK_NAME[@QUEUE]', 'https://...' or 'sqs:QUEUE_NAME_OR_URL'",
            )
        for name in (target.name, target.queue or ""):
            if name.startswith((f"{key_prefix}:", *RESERVED)):
                raise InvalidRequest("reply_to", f"{echo(text)} points into batchline's own keys, queues or tasks")
        if target.kind == "redis-stream":
            name = target.name
            if (name in BROKER_STREAM_NAMES or name.startswith(BROKER_STREAM_PREFIXES)
                    or name.endswith(BROKER_STREAM_SUFFIXES)):
                raise InvalidRequest("reply_to", f"{echo(text)}: a reply stream may not be named like a Celery queue "
                                     "(celery, celery.*, celeryev*, reply.celery*, *.dq, *.dq2, *.pidbox)")
            tag = hash_tag(key_prefix)
            if tag is not None and hash_tag(name) != tag:  # cluster mode: in the scripts' one slot
                raise InvalidRequest("reply_to", f"{echo(text)}: with the key prefix {key_prefix!r} (cluster mode) a "
                                     f"reply stream's name carries its hash tag, like 'redis-stream:{{{tag}}}.results'")
            if stream_prefix and not name.startswith(stream_prefix):
                raise InvalidRequest("reply_to", f"{echo(text)}: reply stream names must start with "
                                     f"{stream_prefix!r} (BATCHLINE_REPLY_STREAM_PREFIX)")
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
    deadline_ms: int = 0  # when it must be answered by (ms since the epoch; 0: no deadline)
    model: str = ""  # params.model, kept on the record of a deadline request (turnaround is per model)


@lru_cache(maxsize=1024)
def check_reply_to(text: str, key_prefix: str, stream_prefix: str | None = None,
                   policy: WebhookPolicy | None = None) -> ReplyTarget:
    """Parse once per distinct target: a submit_many usually names one for every item. With a
    `policy`, a webhook's host is resolved and checked (intake); delivery checks again, uncached."""
    return ReplyTarget.parse(text, key_prefix, stream_prefix, policy)


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
        raise InvalidRequest("params.max_tokens", f"must be >= 1, got {echo(max_tokens)}")
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
    stream_prefix: str | None = None,
    webhook_policy: WebhookPolicy = STRICT_WEBHOOKS,
    deadline: Any = None,
    deadline_seconds: Any = None,
    now_ms: int = 0,
    min_deadline_seconds: float = 0.0,
) -> EncodedRequest:
    """Validate one request and serialize it. Raises `InvalidRequest` naming the field and rule.
    `deadline` (RFC 3339) or `deadline_seconds` (from `now_ms`) are checked against `min_deadline_seconds`."""
    check_id("tenant", tenant)
    check_id("custom_id", custom_id)
    check_params(params)
    deadline_ms = deadlines.parse(deadline, deadline_seconds, now_ms, min_deadline_seconds)
    beta_set = check_betas(betas)
    if reply_to is None:
        reply_to = ""
    elif not isinstance(reply_to, str):
        raise InvalidRequest("reply_to", f"must be a string, got {type(reply_to).__name__}")
    elif reply_to:
        check_reply_to(reply_to, key_prefix, stream_prefix, webhook_policy)
    params_bytes = _serialized("params", params)
    metadata_json = b""
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise InvalidRequest("metadata", f"must be an object, got {type(metadata).__name__}")
        metadata_json = _serialized("metadata", metadata)
        if len(metadata_json) > MAX_METADATA_BYTES:
            raise InvalidRequest("metadata", f"must be at most {MAX_METADATA_BYTES} bytes as JSON")
    rid = request_id(tenant, custom_id)
    size = len(params_bytes) + len(rid) + ITEM_OVERHEAD
    if size > max_bytes:
        raise InvalidRequest("params", f"request is {size} bytes, over the batch byte limit of {max_bytes}")
    # params, NUL, reply_to: hashed in pieces, so a 1 MB document is not copied to be hashed
    identity = hashlib.blake2b(params_bytes, digest_size=16)
    identity.update(b"\x00" + reply_to.encode())
    if beta_set:  # two requests that differ only in betas are different requests
        identity.update(b"\x00betas:" + beta_set.encode())
    digest = identity.hexdigest()
    # the deadline is not part of the identity: `deadline_seconds` sent again names a later time, and
    # the same request again is a duplicate (the first deadline stands)
    return EncodedRequest(rid, tenant, custom_id, params_bytes, reply_to, metadata_json, digest, size, beta_set,
                          deadline_ms, str(params["model"]) if deadline_ms else "")
