"""A workspace shared with another application, through the plain functions against real parts:
the emulator over HTTP (foreign batches of exactly our size, short list pages, lost create answers),
a real Redis and moto S3. Nothing foreign is adopted, canceled or stored; nothing of ours is paid twice."""

from __future__ import annotations

import time

import boto3
import httpx2
import pytest

from batchline.producers.producer import Producer
from batchline.workers import aggregator, sweeper
from batchline.workers.context import Context
from tests.integration.pipeline import drain, entries

N = 10


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": f"ws {i}"}]}


@pytest.fixture
def shared(pipeline_settings):
    return pipeline_settings.replace(max_batch_requests=N, claim_lease_seconds=1.0, create_timeout_seconds=1.0,
                                     sweep_interval_seconds=0.5)


def foreign(emulator, batches: int, requests: int = N) -> list[str]:
    with httpx2.Client(base_url=emulator.base_url) as h:
        return h.post("/_emulator/foreign", json={"batches": batches, "requests": requests}).json()["batch_ids"]


def sweep_until(ctx: Context, done, timeout: float = 15.0) -> list[sweeper.SweepReport]:
    reports = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reports.append(sweeper.sweep(ctx, lambda b: None))
        if done(reports[-1]):
            return reports
        time.sleep(0.2)
    raise AssertionError(f"sweeps did not settle: {reports[-3:]}")


def s3_keys(settings) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=settings.s3_bucket)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_foreign_batch_of_our_size_is_never_adopted(shared, redis_client, emulator):
    producer = Producer.from_settings(shared)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(N)), reply_to="redis-stream:ws")
    emulator.set_faults(http_500_rate=1.0, fault_operations=("create",))  # fails before creating
    ctx = Context(shared)
    (created,) = aggregator.pack(ctx)
    assert created.outcome == "ambiguous"
    theirs = foreign(emulator, 1)  # another application, same size, inside our window: the only candidate
    emulator.set_faults(http_500_rate=0.0)
    reports = sweep_until(ctx, lambda r: bool(r.released))
    assert not any(r.adopted for r in reports)
    assert ctx.redis.hget(ctx.keys.batch(created.batch_id), "reason") == b"reconciled_not_created"
    proofs = ctx.redis.hgetall(ctx.keys.reconcile_proofs(created.batch_id))
    assert {k.decode(): v.decode() for k, v in proofs.items()} == dict.fromkeys(theirs, "not_ours")
    drain(ctx)
    assert len(entries(redis_client, "ws")) == N
    books = emulator.books()
    assert books["batches_created"] == 1 and books["requests_in_multiple_batches"] == 0
    assert books["foreign"]["canceled"] == 0 and books["foreign"]["deleted"] == 0
    stored = s3_keys(shared)
    assert stored and not [key for key in stored if any(pid in key for pid in theirs)]
    for key in [key for key in stored if "/batches/" in key]:  # raw files: only of batches submitted by us
        bid = key.split("/batches/")[1].split("/")[0]
        assert ctx.redis.hget(ctx.keys.batch(bid), "adopted") == b"0" and bid != created.batch_id


def test_a_lost_create_answer_is_found_behind_hundreds_of_foreign_batches(shared, redis_client, emulator):
    producer = Producer.from_settings(shared)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(N)), reply_to="redis-stream:lost")
    emulator.set_faults(create_lost_reply_rate=1.0, list_page_max=7)
    ctx = Context(shared)
    (created,) = aggregator.pack(ctx)
    assert created.outcome == "ambiguous"
    emulator.set_faults(create_lost_reply_rate=0.0)
    theirs = foreign(emulator, 300)  # newer than ours: ours is 43 short pages down
    reports = sweep_until(ctx, lambda r: bool(r.adopted or r.released))
    assert reports[-1].adopted == [created.batch_id] and not any(r.released for r in reports)
    pid = ctx.redis.hget(ctx.keys.batch(created.batch_id), "provider_id").decode()
    assert pid not in theirs
    drain(ctx)
    assert len(entries(redis_client, "lost")) == N
    books = emulator.books()
    assert books["batches_created"] == 1 and books["requests_in_multiple_batches"] == 0
    assert books["foreign"]["canceled"] == 0 and books["foreign"]["deleted"] == 0
