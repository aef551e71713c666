"""Where results go: S3 (one object per request, the raw file per batch) and reply_to targets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from batchline.config.settings import Settings

PART_BYTES = 8 * 1024 * 1024  # S3 multipart parts must be >= 5 MiB (except the last)


def result_key(settings: Settings, tenant: str, custom_id: str) -> str:
    return f"{settings.s3_prefix}/results/{tenant}/{custom_id}.json".lstrip("/")


def raw_key(settings: Settings, batch_id: str) -> str:
    return f"{settings.s3_prefix}/batches/{batch_id}/results.jsonl".lstrip("/")


class S3Results:
    """Per-request result objects, written in parallel (boto3 clients are thread-safe)."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client = client
        self.bucket = settings.s3_bucket
        self.pool = ThreadPoolExecutor(max_workers=settings.s3_put_threads, thread_name_prefix="s3put")

    def put_many(self, objects: Sequence[tuple[str, bytes]]) -> None:
        def put(item: tuple[str, bytes]) -> None:
            self.client.put_object(Bucket=self.bucket, Key=item[0], Body=item[1],
                                   ContentType="application/json")

        for _ in self.pool.map(put, objects):
            pass

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class RawUpload:
    """The provider's results file, uploaded to S3 as it streams (multipart, bounded memory)."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.upload_id = client.create_multipart_upload(Bucket=bucket, Key=key,
                                                        ContentType="application/x-jsonl")["UploadId"]
        self.parts: list[dict[str, Any]] = []
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= PART_BYTES:
            self._flush()

    def _flush(self) -> None:
        number = len(self.parts) + 1
        resp = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                       PartNumber=number, Body=bytes(self.buffer))
        self.parts.append({"ETag": resp["ETag"], "PartNumber": number})
        self.buffer.clear()

    def complete(self) -> None:
        if self.buffer or not self.parts:
            self._flush()
        self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                              MultipartUpload={"Parts": self.parts})

    def abort(self) -> None:
        self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)


def result_object(fields: dict[str, Any], result: dict[str, Any], provider_custom_id: str) -> bytes:
    """The per-request S3 object: the caller's id, the outcome, the provider's line, batch, times."""
    return orjson.dumps({**fields, "provider_line": {"custom_id": provider_custom_id, "result": result}})


CelerySend = Callable[[str, str | None, dict[str, Any]], None]


def celery_sender(app: Any) -> CelerySend:
    """Deliver an outcome to a `celery:TASK[@QUEUE]` reply target through this app's broker."""

    def send(task: str, queue: str | None, payload: dict[str, Any]) -> None:
        # The task id is derived from the request: downstream can use it as its idempotency key.
        # kwargsrepr: task events (Flower, the event bus) must not carry the completion text.
        redacted = {k: v for k, v in payload.items() if k != "result"}
        task_id = f"batchline-{payload['idempotency_key']}"
        if payload.get("replay"):  # `batchline replay`: a new task, not a duplicate of the first delivery's
            task_id += f":replay:{payload['replay']}"
        app.send_task(task, kwargs=payload, queue=queue, task_id=task_id,
                      kwargsrepr=repr({**redacted, "result": "<redacted>"}))

    return send
