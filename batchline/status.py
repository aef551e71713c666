"""Reading a request's status from Redis (shared by the producer and the CLI)."""

from __future__ import annotations

import json
from typing import Any

import redis

from batchline.clock import iso
from batchline.fields import B, R
from batchline.keys import CANCEL_BATCH, Keys, request_id
from batchline.redis_client import text, text_map

_FIELDS = {R.STATE: "state", R.OUTCOME: "outcome", R.BATCH: "batch_id", R.S3_KEY: "s3_key", R.REPLY_TO: "reply_to",
           R.UNDELIVERABLE_ERROR: "delivery_error",
           R.EXTERNAL_ERROR: "send_error"}  # a webhook or SQS send that failed and will be retried
_TIMES = {R.QUEUED_AT: "queued_at", R.DELIVERED_AT: "delivered_at", R.UNDELIVERABLE_AT: "undeliverable_at",
          R.DEADLINE: "deadline"}


def read_status(client: redis.Redis, keys: Keys, tenant: str, custom_id: str) -> dict[str, Any] | None:
    rid = request_id(tenant, custom_id)
    raw = client.hgetall(keys.request(rid))
    if not raw:
        return None
    rec = text_map(raw)
    status: dict[str, Any] = {"custom_id": custom_id, "tenant": tenant, "request_id": rid}
    for short, name in _FIELDS.items():
        if rec.get(short):
            status[name] = rec[short]
    for short, name in _TIMES.items():
        if rec.get(short):
            status[name] = iso(rec[short])
    status["attempts"] = int(rec.get(R.ATTEMPTS) or 0)
    status.update(path_of(rec))
    if rec.get(R.COST) == "unpriced":  # succeeded; its model has no price in the table
        status["cost_usd"] = status["standard_cost_usd"] = None
        status["unpriced"] = True
    elif rec.get(R.COST):
        status["cost_usd"] = int(rec[R.COST]) / 1e6
        status["standard_cost_usd"] = int(rec.get(R.STANDARD_COST) or 0) / 1e6
    if rec.get(R.CANCEL):
        status["cancel_requested"] = True
        if rec.get(R.BATCH) == CANCEL_BATCH and status.get("state") == "batched":
            status["state"] = "canceling"  # left the queue; a worker's sweep delivers its `canceled`
    history = [json.loads(line) for line in rec.get(R.HISTORY, "").split("\n") if line]
    status["history"] = history
    if status.get("state") in ("delivered", "undeliverable") and history and history[-1].get("error_type"):
        status["error_type"] = history[-1]["error_type"]
        status["error_message"] = history[-1].get("error_message")
    bid = rec.get(R.BATCH)
    if bid:
        batch = client.hmget(keys.batch(bid), B.STATE, B.PROVIDER_ID)
        status["batch_state"] = text(batch[0])
        if status.get("state") == "submitted" and status["batch_state"] == "ended":
            status["state"] = "ended"  # the batch ended; this result is not yet delivered
        if batch[1]:
            status["provider_batch_id"] = text(batch[1])
    return status


def path_of(rec: dict[str, str]) -> dict[str, Any]:
    """The path a request takes (batch, realtime, hedged) and why; with a deadline, whether it was met."""
    if not rec.get(R.DEADLINE):
        return {"path": "batch", "path_reason": "no deadline"}
    out: dict[str, Any] = {"path": rec.get(R.PATH) or "batch",
                           "path_reason": rec.get(R.PATH_REASON) or "deadline set; routed at the next pack"}
    deadline, delivered = int(rec[R.DEADLINE]), rec.get(R.DELIVERED_AT)
    if delivered:
        out["deadline_met"] = int(delivered) <= deadline
        if int(delivered) > deadline:
            out["late_seconds"] = round((int(delivered) - deadline) / 1000, 3)
    if rec.get(R.LATE):
        out["late_reason"] = "tenant's real-time budget spent: waits for its batch"
    return out
