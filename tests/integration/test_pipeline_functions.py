"""The pipeline's plain functions against real parts (Redis, emulator over HTTP, moto S3), no Celery."""

from __future__ import annotations

import json
import time

import boto3

from batchline.clock import FakeClock
from batchline.emulator import reply_text
from batchline.keys import request_id
from batchline.pending import count as pending_count
from batchline.producers.producer import Producer
from batchline.workers import aggregator, poller, results, sweeper
from batchline.workers.context import Context
from tests.integration.pipeline import drain


def params(i: int, tenant: str) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 32,
            "messages": [{"role": "user", "content": f"question {i} from {tenant}"}]}


def test_two_tenants_same_ids_each_gets_own_reply(pipeline_settings, redis_client):
    s = pipeline_settings.replace(max_batch_requests=700)
    producer = Producer.from_settings(s)
    for tenant in ("alpha", "beta"):
        report = producer.submit_many(
            ({"custom_id": f"q-{i}", "params": params(i, tenant)} for i in range(1000)),
            tenant=tenant, reply_to=f"redis-stream:out-{tenant}",
        )
        assert report.accepted == 1000
    ctx = Context(s)
    drain(ctx)
    batches = ctx.redis.zrange(ctx.keys.batches, 0, -1)
    assert len(batches) == 3  # 2000 requests, 700 per batch

    s3 = boto3.client("s3", endpoint_url=s.s3_endpoint_url, region_name="us-east-1")
    for tenant in ("alpha", "beta"):
        entries = redis_client.xrange(f"out-{tenant}")
        assert len(entries) == 1000
        seen = set()
        for _, fields in entries:
            f = {k.decode(): v.decode() for k, v in fields.items()}
            assert f["tenant"] == tenant and f["outcome"] == "succeeded"
            i = int(f["custom_id"].split("-")[1])
            text = json.loads(f["result"])["message"]["content"][0]["text"]
            assert text == reply_text(params(i, tenant))
            # the same stable key as a Celery target gets: a consumer dedupes on it after a failover
            queued_at = redis_client.hget(ctx.keys.request(request_id(tenant, f["custom_id"])), "q").decode()
            assert f["idempotency_key"] == f"{tenant}:{f['custom_id']}:{queued_at}"
            seen.add(f["custom_id"])
        assert len(seen) == 1000
        obj = json.loads(s3.get_object(Bucket=s.s3_bucket, Key=f"batchline/results/{tenant}/q-7.json")["Body"].read())
        assert obj["custom_id"] == "q-7" and obj["tenant"] == tenant
        assert obj["provider_line"]["result"]["message"]["content"][0]["text"] == reply_text(params(7, tenant))
        assert producer.status("q-7", tenant=tenant)["state"] == "delivered"
    raw_keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s.s3_bucket, Prefix="batchline/batches/")["Contents"]]
    assert len(raw_keys) == 3
    assert ctx.redis.hget(ctx.keys.stats, "in_flight") == b"0"


def test_collect_twice_delivers_once(pipeline_settings, redis_client):
    s = pipeline_settings.replace(s3_bucket=None)
    producer = Producer.from_settings(s)
    producer.submit_many(({"custom_id": f"c-{i}", "params": params(i, "t")} for i in range(300)),
                         reply_to="redis-stream:once")
    ctx = Context(s)
    created = aggregator.pack(ctx)
    assert [c.outcome for c in created] == ["submitted"]
    bid = created[0].batch_id
    ended: list[str] = []
    deadline = time.monotonic() + 10
    while not ended and time.monotonic() < deadline:
        time.sleep(0.2)
        ctx.redis.delete(ctx.keys.poll_lock())
        poller.poll(ctx, ended.append)
    assert ended == [bid]
    # a second poller finds nothing new to hand off
    ctx.redis.delete(ctx.keys.poll_lock())
    assert poller.poll(ctx, ended.append).ended == []
    # simulate a collector that died after delivering part: mark the batch ended again and replay
    first = results.collect(ctx, bid)
    assert first.delivered == 300
    ctx.redis.hset(ctx.keys.batch(bid), "state", "ended")
    second = results.collect(ctx, bid)
    assert second.delivered == 0 and second.skipped == 300
    assert redis_client.xlen("once") == 300


def test_sweeper_releases_expired_claim(pipeline_settings, redis_client):
    s = pipeline_settings.replace(claim_lease_seconds=1.0)
    Producer.from_settings(s).submit_many(
        {"custom_id": f"s-{i}", "params": params(i, "t")} for i in range(50))
    clock = FakeClock()
    ctx = Context(s, clock=clock)
    take = aggregator.next_batch(aggregator.queue_view(ctx), aggregator.limits(ctx))
    bid, _, flat = aggregator.claim(ctx, take)
    assert len(flat) == 100 and pending_count(redis_client, ctx.keys) == 0
    sweeper.sweep(ctx, lambda b: None)
    assert pending_count(redis_client, ctx.keys) == 0  # the lease still holds
    clock.advance(1.1)
    report = sweeper.sweep(ctx, lambda b: None)
    assert report.released == [bid]
    assert pending_count(redis_client, ctx.keys) == 50
    assert redis_client.hget(ctx.keys.stats, "in_flight") == b"0"
