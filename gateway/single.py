"""batchline's own single requests: `POST/GET/DELETE /v1/requests` (the producer's calls over HTTP)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

import orjson

from batchline.errors import InvalidRequest
from batchline.producers.producer import Producer, Rejection
from batchline.requests import check_id, encode
from batchline.tenants import Tenant

from .errors import ApiError, not_found

QuotaCheck = Callable[[Tenant, int, int], None]


class Requests:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.settings = producer.settings
        self._s3: Any = None

    def _precheck(self, tenant: Tenant, index: int, item: Any) -> tuple[int, Rejection | None]:
        """Size of a request, or why it is refused before it reaches the producer (tenant, reply_to)."""
        if not isinstance(item, Mapping):
            return 0, Rejection(index, None, "request", f"must be an object, got {type(item).__name__}")
        cid = item.get("custom_id") if isinstance(item.get("custom_id"), str) else None
        if item.get("tenant", tenant.name) != tenant.name:
            return 0, Rejection(index, cid, "tenant", "must be the API key's tenant (or left out)")
        reply_to = item.get("reply_to")
        if isinstance(reply_to, str) and reply_to and not tenant.allows_reply_to(reply_to, self.producer.keys):
            return 0, Rejection(index, cid, "reply_to", f"{reply_to[:200]!r} is not allowed for tenant {tenant.name!r}")
        try:
            size = encode(
                item.get("custom_id"),
                item.get("params"),
                tenant=tenant.name,
                reply_to=reply_to,
                metadata=item.get("metadata"),
                max_bytes=self.settings.max_batch_bytes,
                key_prefix=self.settings.key_prefix,
            ).size
        except InvalidRequest:
            return 0, None  # the producer reports it, with the same field and rule
        return size, None

    def submit(self, tenant: Tenant, items: list[Any], quota: QuotaCheck) -> dict[str, Any]:
        """The report of `Producer.submit_many`: accepted, duplicate, rejected (index, custom_id, field, reason)."""
        rejected: list[Rejection] = []
        kept: list[Any] = []
        where: list[int] = []
        size = 0
        for index, item in enumerate(items):
            n, why = self._precheck(tenant, index, item)
            if why is not None:
                rejected.append(why)
                continue
            size += n
            kept.append({k: v for k, v in item.items() if k != "tenant"})
            where.append(index)
        quota(tenant, len(kept), size)
        report = self.producer.submit_many(kept, tenant=tenant.name)
        rejected += [Rejection(where[r.index], r.custom_id, r.field, r.reason) for r in report.rejected]
        rejected.sort(key=lambda r: r.index)
        return {"accepted": report.accepted, "duplicate": report.duplicate, "rejected": [asdict(r) for r in rejected]}

    def status(self, tenant: Tenant, custom_id: str) -> dict[str, Any]:
        """State with every attempt, and the provider's result once final (read from S3, where the
        result workers put it)."""
        self._check(custom_id)
        status: dict[str, Any] | None = self.producer.status(custom_id, tenant.name)
        if status is None:
            raise not_found(f"request {custom_id!r}")
        status.pop("reply_to", None)
        if status.get("state") == "delivered" and status.get("s3_key") and self.settings.s3_bucket:
            status["result"] = self._result(str(status["s3_key"]))
        return status

    def cancel(self, tenant: Tenant, custom_id: str) -> dict[str, str]:
        self._check(custom_id)
        code = self.producer.cancel(custom_id, tenant.name)
        if code == "unknown":
            raise not_found(f"request {custom_id!r}")
        return {"custom_id": custom_id, "cancel": code}

    @staticmethod
    def _check(custom_id: str) -> None:
        try:
            check_id("custom_id", custom_id)
        except InvalidRequest as exc:
            raise ApiError(404, f"request not found ({exc})") from None

    def _result(self, key: str) -> Any:
        if self._s3 is None:
            import boto3  # the gateway extra; only needed to read results back

            self._s3 = boto3.client("s3", endpoint_url=self.settings.s3_endpoint_url)
        try:
            body = self._s3.get_object(Bucket=self.settings.s3_bucket, Key=key)["Body"].read()
        except Exception:  # a missing or unreadable object: the status still answers
            return None
        return orjson.loads(body).get("provider_line", {}).get("result")
