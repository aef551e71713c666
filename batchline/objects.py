"""Large params kept by reference (claim check): the object store behind a small interface.

A request whose encoded params are over `BATCHLINE_INLINE_MAX_BYTES` is PUT at intake under a key
named by the sha256 of its params (`{s3_prefix}/params/<sha256>`: the same document twice is one
object), and its Redis record holds `@<key>` where inline params would be. The aggregator streams
the object into the create body. boto3 is imported only when an S3 store is built, so a producer
that never submits large requests installs none of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any, Protocol

from batchline.config.settings import Settings
from batchline.errors import ParamsUnavailable, RetryableError

REF = b"@"  # first byte of a reference in a record's params field (inline params start with '{')
CHUNK = 1 << 20  # bytes read from the store at a time while streaming a create body


class ObjectStore(Protocol):
    """Where large params are kept. `name` says which store in errors (`s3://bucket`)."""

    name: str

    def put(self, key: str, data: bytes) -> None: ...

    def exists(self, key: str) -> bool: ...

    def read(self, key: str) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...


def params_key(settings: Settings, params_json: bytes) -> str:
    """The content-addressed key of one request's params."""
    digest = hashlib.sha256(params_json).hexdigest()
    return f"{settings.s3_prefix}/params/{digest}" if settings.s3_prefix else f"params/{digest}"


def is_ref(params: bytes) -> bool:
    return params[:1] == REF


def ref_key(params: bytes) -> str:
    return params[1:].decode()


class MemoryStore:
    """The in-memory twin, for unit tests."""

    name = "memory"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.puts = 0

    def put(self, key: str, data: bytes) -> None:
        self.puts += 1
        self.objects[key] = data

    def exists(self, key: str) -> bool:
        return key in self.objects

    def read(self, key: str) -> Iterator[bytes]:
        if key not in self.objects:
            raise ParamsUnavailable(key)
        data = self.objects[key]
        for i in range(0, len(data), CHUNK):
            yield data[i : i + CHUNK]

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)


class S3Store:
    """Params objects in the results bucket (`BATCHLINE_S3_BUCKET`). Every fault of the store itself
    (unreachable, refused, throttled past boto3's retries) is a `RetryableError` naming it."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket
        self.name = f"s3://{bucket}"

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        import boto3
        from botocore.config import Config

        cfg = Config(
            max_pool_connections=max(10, settings.s3_put_threads),
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=60,
        )
        assert settings.s3_bucket is not None
        return cls(boto3.client("s3", endpoint_url=settings.s3_endpoint_url, config=cfg), settings.s3_bucket)

    def _fault(self, key: str, exc: Exception) -> RetryableError:
        return RetryableError(f"object store {self.name} unavailable ({key}): {type(exc).__name__}: {exc}"[:500])

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/json")
        except Exception as exc:  # botocore's errors have no common root worth naming here
            raise self._fault(key, exc) from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            if _status(exc) == 404:
                return False
            raise self._fault(key, exc) from exc
        return True

    def read(self, key: str) -> Iterator[bytes]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except Exception as exc:
            if _status(exc) == 404:
                raise ParamsUnavailable(key) from exc
            raise self._fault(key, exc) from exc
        try:
            while True:
                try:
                    chunk = body.read(CHUNK)
                except Exception as exc:
                    raise self._fault(key, exc) from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise self._fault(key, exc) from exc


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def from_settings(settings: Settings) -> ObjectStore | None:
    """The configured store, or None without `BATCHLINE_S3_BUCKET`."""
    return S3Store.from_settings(settings) if settings.s3_bucket else None
