"""reply_to `celery:TASK@QUEUE`: the outcome is sent as that Celery task, through the real broker."""

from __future__ import annotations

import base64
import json

from batchline.producers.producer import Producer
from batchline.workers.app import create_app
from batchline.workers.context import Context
from tests.integration.pipeline import drain


def test_celery_target_gets_task_with_idempotency_key(pipeline_settings, redis_client):
    s = pipeline_settings.replace(s3_bucket=None)
    producer = Producer.from_settings(s)
    producer.submit_many(({"custom_id": f"job-{i}", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"n{i}"}]}}
        for i in range(25)), tenant="svc", reply_to="celery:downstream.handle_result@downstream")
    app = create_app(s)
    drain(Context(s, app))  # the workers' own sender (through the context), the real broker
    messages = [json.loads(m) for m in redis_client.lrange("downstream", 0, -1)]
    assert len(messages) == 25
    assert sorted(json.loads(base64.b64decode(m["body"]))[1]["custom_id"] for m in messages) == sorted(
        f"job-{i}" for i in range(25))
    for m in messages:
        headers = m["headers"]
        _args, kwargs, _ = json.loads(base64.b64decode(m["body"]))
        assert headers["task"] == "downstream.handle_result"
        assert headers["id"] == f"batchline-{kwargs['idempotency_key']}"
        assert "Reply" not in headers["kwargsrepr"]  # task events never carry the completion
        assert kwargs["tenant"] == "svc" and kwargs["outcome"] == "succeeded"
        assert kwargs["idempotency_key"].startswith(f"svc:{kwargs['custom_id']}:")
        assert kwargs["result"]["message"]["role"] == "assistant"
    assert producer.status("job-3", tenant="svc")["state"] == "delivered"
