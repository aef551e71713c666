"""SQS reply targets (`sqs:QUEUE_NAME_OR_URL`): one message per result, ten (or 256 KiB) per
`send_message_batch` call. FIFO queues (`.fifo`) get MessageGroupId = the tenant and
MessageDeduplicationId = the idempotency key. A body over SQS's 256 KiB limit is sent as an S3
pointer instead (the result left out, `result_in_s3` true): the receiver reads the S3 object."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from batchline.workers.webhook_sender import Verdict

MAX_MESSAGE_BYTES = 256 * 1024  # one message, and the sum of one batch call's messages
MAX_BATCH = 10
MISSING_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
#: errors retrying cannot cure: the queue is missing, the caller may not write to it, the message is refused
PERMANENT_CODES = frozenset(
    {
        *MISSING_QUEUE,
        "AccessDenied",
        "AccessDeniedException",
        "InvalidMessageContents",
        "InvalidParameterValue",
        "UnsupportedOperation",
        "KMS.AccessDeniedException",
    }
)


@dataclass(frozen=True, slots=True)
class Message:
    """One result for an SQS queue: its body, the S3 pointer form, and the keys FIFO queues need."""

    rid: str
    tenant: str
    idempotency_key: str
    body: bytes
    pointer: bytes | None  # the body without the result (None: no S3 object to point at)


def queue_url(client: Any, name: str, cache: dict[str, str]) -> str:
    """A queue's URL: given, or looked up by name once per process."""
    if name.startswith(("https://", "http://")):
        return name
    if name not in cache:
        cache[name] = str(client.get_queue_url(QueueName=name)["QueueUrl"])
    return cache[name]


def dedup_id(key: str) -> str:
    """MessageDeduplicationId: at most 128 characters; a longer idempotency key goes as its digest."""
    return key if len(key) <= 128 else hashlib.sha256(key.encode()).hexdigest()


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__


def send(client: Any, name: str, messages: Sequence[Message], cache: dict[str, str]) -> list[tuple[str, Verdict, str]]:
    """Send to one queue; (rid, verdict, error) per message, in order."""
    try:
        url = queue_url(client, name, cache)
    except (ClientError, BotoCoreError) as exc:
        verdict = Verdict.NEVER if _code(exc) in PERMANENT_CODES else Verdict.LATER
        return [(m.rid, verdict, f"sqs:{name}: {_code(exc)}") for m in messages]
    fifo = url.rstrip("/").endswith(".fifo")
    out: dict[str, tuple[str, Verdict, str]] = {}
    batch: list[tuple[Message, bytes]] = []
    size = 0

    def flush() -> None:
        nonlocal size
        if batch:
            out.update((r[0], r) for r in _send_batch(client, name, url, fifo, batch))
        batch.clear()
        size = 0

    for m in messages:
        body = m.body
        if len(body) > MAX_MESSAGE_BYTES:
            if m.pointer is None or len(m.pointer) > MAX_MESSAGE_BYTES:
                out[m.rid] = (
                    m.rid,
                    Verdict.NEVER,
                    f"sqs:{name}: the result is {len(body)} bytes, over SQS's "
                    f"{MAX_MESSAGE_BYTES} and no S3 object to point at (BATCHLINE_S3_BUCKET)",
                )
                continue
            body = m.pointer
        if len(batch) == MAX_BATCH or size + len(body) > MAX_MESSAGE_BYTES:
            flush()
        batch.append((m, body))
        size += len(body)
    flush()
    return [out[m.rid] for m in messages]


def _send_batch(
    client: Any, name: str, url: str, fifo: bool, batch: Sequence[tuple[Message, bytes]]
) -> list[tuple[str, Verdict, str]]:
    entries = []
    for i, (m, body) in enumerate(batch):
        entry: dict[str, Any] = {"Id": str(i), "MessageBody": body.decode()}
        if fifo:
            entry["MessageGroupId"] = m.tenant
            entry["MessageDeduplicationId"] = dedup_id(m.idempotency_key)
        entries.append(entry)
    try:
        resp = client.send_message_batch(QueueUrl=url, Entries=entries)
    except (ClientError, BotoCoreError) as exc:
        verdict = Verdict.NEVER if _code(exc) in PERMANENT_CODES else Verdict.LATER
        return [(m.rid, verdict, f"sqs:{name}: {_code(exc)}") for m, _ in batch]
    results: list[tuple[str, Verdict, str]] = []
    failed = {f["Id"]: f for f in resp.get("Failed", [])}
    for i, (m, _) in enumerate(batch):
        f = failed.get(str(i))
        if f is None:
            results.append((m.rid, Verdict.DELIVERED, ""))
        else:
            verdict = Verdict.NEVER if f.get("SenderFault") else Verdict.LATER
            results.append((m.rid, verdict, f"sqs:{name}: {f.get('Code')}: {str(f.get('Message', ''))[:200]}"))
    return results


def pointer_body(fields: dict[str, Any]) -> bytes:
    """The S3 pointer form of a body: every field but the result, and `result_in_s3` true."""
    return orjson.dumps({**fields, "result": None, "result_in_s3": True})
