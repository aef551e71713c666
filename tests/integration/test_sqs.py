"""SQS reply targets against moto's server over HTTP (the same server the suite runs for S3): one
message per result, ten per call, FIFO group and dedup ids, the S3 pointer past 256 KiB, a missing
queue undeliverable until it exists (`batchline redeliver`)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from batchline.producers.producer import Producer
from batchline.workers import delivery, sqs_sender
from batchline.workers.context import Context
from batchline.workers.targets import redeliver, undeliverable_ids
from batchline.workers.webhook_sender import Verdict
from tests.integration.pipeline import drain


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"n{i}"}]}


@pytest.fixture
def sqs_settings(pipeline_settings, s3_server):
    return pipeline_settings.replace(sqs_endpoint_url=s3_server.url, sqs_region="us-east-1")


@pytest.fixture
def sqs(s3_server):
    client = boto3.client("sqs", endpoint_url=s3_server.url, region_name="us-east-1")
    yield client
    client.close()


def receive_all(sqs, url: str, expect: int) -> list[dict]:
    got: list[dict] = []
    for _ in range(20):
        resp = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0)
        got += resp.get("Messages", [])
        if len(got) >= expect:
            break
    return got


def count_batch_calls(ctx: Context) -> list[int]:
    sizes: list[int] = []
    ctx.sqs.meta.events.register(
        "provide-client-params.sqs.SendMessageBatch", lambda params, **kw: sizes.append(len(params["Entries"]))
    )
    return sizes


def test_results_to_a_standard_queue_ten_per_call(sqs_settings, sqs):
    name = f"results-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    producer = Producer.from_settings(sqs_settings)
    producer.submit_many(
        ({"custom_id": f"q-{i}", "params": params(i)} for i in range(25)), tenant="acme", reply_to=f"sqs:{name}"
    )
    ctx = Context(sqs_settings)
    sizes = count_batch_calls(ctx)
    drain(ctx)
    report = delivery.run_due(ctx)
    assert report.delivered == 25 and sizes == [10, 10, 5]
    bodies = [json.loads(m["Body"]) for m in receive_all(sqs, url, 25)]
    assert sorted(b["custom_id"] for b in bodies) == sorted(f"q-{i}" for i in range(25))
    b = next(b for b in bodies if b["custom_id"] == "q-7")
    assert b["tenant"] == "acme" and b["outcome"] == "succeeded" and b["result"]["type"] == "succeeded"
    assert b["idempotency_key"].startswith("acme:q-7:") and b["s3_key"].endswith("acme/q-7.json")
    assert producer.status("q-7", tenant="acme")["state"] == "delivered"


def test_fifo_queue_by_url_gets_group_and_dedup_ids(sqs_settings, sqs):
    name = f"results-{uuid.uuid4().hex[:8]}.fifo"
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    producer = Producer.from_settings(sqs_settings)
    producer.submit_many(
        ({"custom_id": f"f-{i}", "params": params(i)} for i in range(3)), tenant="acme", reply_to=f"sqs:{url}"
    )
    ctx = Context(sqs_settings)
    drain(ctx)
    assert delivery.run_due(ctx).delivered == 3
    messages = receive_all(sqs, url, 3)
    assert len(messages) == 3
    for m in messages:
        body = json.loads(m["Body"])
        assert m["Attributes"]["MessageGroupId"] == "acme"
        assert m["Attributes"]["MessageDeduplicationId"] == body["idempotency_key"]


def test_missing_queue_is_undeliverable_until_it_exists(sqs_settings, sqs):
    name = f"later-{uuid.uuid4().hex[:8]}"
    producer = Producer.from_settings(sqs_settings)
    producer.submit("m-1", params(1), tenant="acme", reply_to=f"sqs:{name}")
    ctx = Context(sqs_settings)
    drain(ctx)
    assert delivery.run_due(ctx).undeliverable == 1
    status = producer.status("m-1", tenant="acme")
    assert status["state"] == "undeliverable" and "NonExistentQueue" in status["delivery_error"]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert redeliver(ctx, None, undeliverable_ids(ctx, tenant="acme")).delivering == 1
    assert delivery.run_due(ctx).delivered == 1
    assert [json.loads(m["Body"])["custom_id"] for m in receive_all(sqs, url, 1)] == ["m-1"]


def test_over_256_kib_sends_the_s3_pointer(sqs):
    url = sqs.create_queue(QueueName=f"big-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    fields = {
        "custom_id": "big",
        "tenant": "acme",
        "outcome": "succeeded",
        "s3_key": "b/results/acme/big.json",
        "batch_id": "blb_1",
        "idempotency_key": "acme:big:1",
    }
    huge = delivery.body(fields, json.dumps({"type": "succeeded", "text": "x" * 300_000}).encode())
    small = delivery.body({**fields, "custom_id": "small"}, b'{"type":"succeeded"}')
    messages = [
        sqs_sender.Message("r1", "acme", "acme:big:1", huge, sqs_sender.pointer_body(fields)),
        sqs_sender.Message("r2", "acme", "acme:small:1", small, None),
        sqs_sender.Message("r3", "acme", "acme:nos3:1", huge, None),
    ]
    out = sqs_sender.send(sqs, url, messages, {})
    assert [v for _, v, _ in out] == [Verdict.DELIVERED, Verdict.DELIVERED, Verdict.NEVER]
    assert "over SQS's 262144" in out[2][2]
    bodies = {json.loads(m["Body"])["custom_id"]: json.loads(m["Body"]) for m in receive_all(sqs, url, 2)}
    assert bodies["big"]["result"] is None and bodies["big"]["result_in_s3"] is True
    assert bodies["big"]["s3_key"] == "b/results/acme/big.json"
    assert bodies["small"]["result"] == {"type": "succeeded"}
