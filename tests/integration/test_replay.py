"""`batchline replay`: stored results read back from moto's S3 server and sent again to a webhook
receiver, an SQS queue or a stream, with the original idempotency key and a replay marker."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from batchline.cli import main
from batchline.keys import Keys
from batchline.producers.producer import Producer
from batchline.requests import ReplyTarget
from batchline.tenants import WebhookSecrets
from batchline.webhook_receiver import Receiver
from batchline.workers.context import Context
from batchline.workers.replay import Filters, parse_time, replay
from tests.integration.pipeline import drain, entries


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"n{i}"}]}


@pytest.fixture
def stored(pipeline_settings, redis_client):
    """12 results of tenant acme in S3 (first 8 in one batch, 4 in a later one) and 3 of another tenant."""
    s = pipeline_settings.replace(webhook_allow_http=True, webhook_allow_private=("127.0.0.1",))
    producer = Producer.from_settings(s)
    stream = f"orig-{uuid.uuid4().hex[:6]}"
    producer.submit_many(
        ({"custom_id": f"r-{i}", "params": params(i)} for i in range(8)),
        tenant="acme",
        reply_to=f"redis-stream:{stream}",
    )
    producer.submit_many(({"custom_id": f"o-{i}", "params": params(i)} for i in range(3)), tenant="other")
    ctx = Context(s)
    drain(ctx)
    producer.submit_many(
        ({"custom_id": f"r-{i}", "params": params(i)} for i in range(8, 12)),
        tenant="acme",
        reply_to=f"redis-stream:{stream}",
    )
    drain(ctx)
    originals = entries(redis_client, stream)
    assert len(originals) == 12
    return s, ctx, originals


def test_replay_to_a_webhook_with_the_original_key_and_a_marker(stored, redis_client):
    s, ctx, originals = stored
    secret = WebhookSecrets(redis_client, Keys(s.key_prefix)).rotate("acme")
    with Receiver(secret) as rx:
        report = replay(ctx, Filters("acme"), ReplyTarget("webhook", rx.url))
        assert (report.listed, report.matched, report.sent, report.failed) == (12, 12, 12, {})
        assert rx.bad_signatures == 0 and sorted(rx.delivered()) == sorted(f"r-{i}" for i in range(12))
        call = rx.delivered()["r-3"]
        assert call.body["idempotency_key"] == originals["r-3"]["idempotency_key"]
        assert call.body["replay"] == report.replay_id and report.replay_id.startswith("replay-")
        assert call.webhook_id == f"{originals['r-3']['idempotency_key']}:replay:{report.replay_id}"
        assert call.body["result"] == json.loads(originals["r-3"]["result"])
        assert call.body["batch_id"] == originals["r-3"]["batch_id"]


def test_filters_and_dry_run(stored, redis_client):
    _, ctx, originals = stored
    first_batch = originals["r-0"]["batch_id"]
    stream = f"replayed-{uuid.uuid4().hex[:6]}"
    target = ReplyTarget("redis-stream", stream)
    assert replay(ctx, Filters("acme", batch=first_batch), target, dry_run=True).matched == 8
    assert redis_client.exists(stream) == 0  # a dry run sends nothing
    assert replay(ctx, Filters("acme", custom_id="r-10"), target).sent == 1
    assert (
        replay(
            ctx,
            Filters(
                "acme",
                since_ms=parse_time("since", "2000-01-01"),
                until_ms=parse_time("until", "2000-12-31", end_of_day=True),
            ),
            target,
        ).matched
        == 0
    )
    assert replay(ctx, Filters("acme", since_ms=parse_time("since", "2000-01-01")), target, dry_run=True).matched == 12
    assert replay(ctx, Filters("acme", custom_id="nope"), target).matched == 0
    got = entries(redis_client, stream)
    assert list(got) == ["r-10"] and got["r-10"]["idempotency_key"] == originals["r-10"]["idempotency_key"]
    assert got["r-10"]["replay"].startswith("replay-") and got["r-10"]["result"] == originals["r-10"]["result"]


def test_replay_cli_to_sqs_with_progress_and_summary(stored, s3_server, monkeypatch, capsys):
    s, _, originals = stored
    sqs = boto3.client("sqs", endpoint_url=s3_server.url, region_name="us-east-1")
    name = f"replay-{uuid.uuid4().hex[:6]}.fifo"
    url = sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})["QueueUrl"]
    env = {
        "BATCHLINE_REDIS_URL": s.redis_url,
        "BATCHLINE_KEY_PREFIX": s.key_prefix,
        "BATCHLINE_S3_BUCKET": s.s3_bucket,
        "BATCHLINE_S3_ENDPOINT_URL": s.s3_endpoint_url,
        "BATCHLINE_SQS_ENDPOINT_URL": s3_server.url,
        "BATCHLINE_SQS_REGION": "us-east-1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert main(["replay", "--tenant", "acme", "--to", f"sqs:{name}", "--dry-run"]) == 0
    assert "matched 12, would send 12, failed 0" in capsys.readouterr().out
    assert main(["replay", "--tenant", "acme", "--to", f"sqs:{name}", "--until", "2999-01-01"]) == 0
    assert "matched 12, sent 12, failed 0" in capsys.readouterr().out
    got = []
    for _ in range(10):  # a FIFO group hands out its next messages once the ones in flight are deleted
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
        got += batch
        for m in batch:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    bodies = {json.loads(m["Body"])["custom_id"]: (json.loads(m["Body"]), m["Attributes"]) for m in got}
    assert len(bodies) == 12
    body, attrs = bodies["r-5"]
    assert body["idempotency_key"] == originals["r-5"]["idempotency_key"] and body["replay"].startswith("replay-")
    assert attrs["MessageGroupId"] == "acme"
    assert attrs["MessageDeduplicationId"] == f"{body['idempotency_key']}:replay:{body['replay']}"
    # bad input: named field and rule, exit 2
    assert main(["replay", "--tenant", "acme", "--to", "https://10.0.0.1/x"]) == 2
    assert "reply_to" in capsys.readouterr().err
    assert main(["replay", "--tenant", "acme", "--to", f"sqs:{name}", "--since", "yesterday"]) == 2
    assert "since: 'yesterday' must be YYYY-MM-DD" in capsys.readouterr().err
    # a target that fails: reported per request, exit 1
    assert main(["replay", "--tenant", "acme", "--custom-id", "r-1", "--to", "sqs:no-such-queue"]) == 1
    assert "r-1: sqs:no-such-queue" in capsys.readouterr().out
