"""The whole pipeline with real processes: `batchline worker` (Celery prefork) and `batchline beat`,
the emulator over HTTP with the official SDK, moto S3 over HTTP, a redis-server of the test's own."""

from __future__ import annotations

import json
from collections import Counter

import boto3
import pytest
import redis

from batchline.config.settings import Settings
from batchline.emulator import reply_text
from batchline.producers.producer import Producer
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e
TENANTS = ("alpha", "beta", "gamma")


def params(i: int, tenant: str) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": f"Summarise item {i} for {tenant}."}]}


def submit(env: dict[str, str], per_tenant: int) -> Producer:
    producer = Producer.from_settings(Settings.from_env(env))
    for tenant in TENANTS:
        report = producer.submit_many(
            ({"custom_id": f"doc-{i}", "params": params(i, tenant)} for i in range(per_tenant)),
            tenant=tenant, reply_to=f"redis-stream:replies:{tenant}")
        assert report.accepted == per_tenant
    return producer


def delivered(client: redis.Redis) -> int:
    return sum(client.xlen(f"replies:{t}") for t in TENANTS)


def check_every_reply(client: redis.Redis, per_tenant: int) -> None:
    for tenant in TENANTS:
        entries = client.xrange(f"replies:{tenant}")
        ids = Counter()
        for _, raw in entries:
            f = {k.decode(): v.decode() for k, v in raw.items()}
            assert f["tenant"] == tenant
            assert f["outcome"] == "succeeded"
            i = int(f["custom_id"].removeprefix("doc-"))
            assert json.loads(f["result"])["message"]["content"][0]["text"] == reply_text(params(i, tenant))
            ids[f["custom_id"]] += 1
        assert len(ids) == per_tenant, f"{tenant}: lost {per_tenant - len(ids)}"
        assert max(ids.values()) == 1, f"{tenant}: delivered twice: {[k for k, v in ids.items() if v > 1]}"


def test_thousands_of_requests_through_real_workers_and_beat(e2e_env, emulator, processes):
    per_tenant = 1000
    worker = processes(["worker", "--role", "all", "--concurrency", "2"], e2e_env)
    beat = processes(["beat"], e2e_env)
    producer = submit(e2e_env, per_tenant)
    client = producer.redis
    wait_for(lambda: delivered(client) >= 3 * per_tenant, 120, "all replies", [worker, beat])
    check_every_reply(client, per_tenant)

    books = emulator.books()
    assert books["requests_created"] == 3 * per_tenant
    assert books["requests_in_multiple_batches"] == 0
    assert books["batches_created"] == 3

    s3 = boto3.client("s3", endpoint_url=e2e_env["BATCHLINE_S3_ENDPOINT_URL"], region_name="us-east-1")
    bucket = e2e_env["BATCHLINE_S3_BUCKET"]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="batchline/results/")
    assert sum(len(p.get("Contents", [])) for p in pages) == 3 * per_tenant
    obj = json.loads(s3.get_object(Bucket=bucket, Key="batchline/results/beta/doc-42.json")["Body"].read())
    assert obj["custom_id"] == "doc-42" and obj["tenant"] == "beta" and obj["outcome"] == "succeeded"
    status = producer.status("doc-42", tenant="beta")
    assert status["state"] == "delivered" and status["s3_key"] == "batchline/results/beta/doc-42.json"
    # secrets never reach the logs
    for proc in (worker, beat):
        assert "sk-e2e-secret-key" not in proc.log()
        assert "testing-secret-value" not in proc.log()


@pytest.mark.parametrize("point", ["after_create", "mid_delivery"])
def test_worker_killed_at_a_crash_point_loses_nothing_and_pays_once(e2e_env, emulator, processes, point):
    """The pool child is SIGKILLed once at `point`; its replacement (and the sweeper) finish the job."""
    per_tenant = 400
    env = {**e2e_env, "BATCHLINE_TEST_CRASH_AT": point, "BATCHLINE_MAX_BATCH_REQUESTS": "600"}
    worker = processes(["worker", "--role", "all", "--concurrency", "2"], env)
    beat = processes(["beat"], env)
    producer = submit(env, per_tenant)
    client = producer.redis
    wait_for(lambda: delivered(client) >= 3 * per_tenant, 120, "all replies", [worker, beat])
    assert client.exists(f"{env['BATCHLINE_KEY_PREFIX']}:crashed:{point}")
    check_every_reply(client, per_tenant)
    books = emulator.books()
    assert books["requests_in_multiple_batches"] == 0
    assert books["requests_created"] == 3 * per_tenant
