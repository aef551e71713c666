"""Large requests through real processes (`batchline worker`, `batchline beat`) on a Redis whose
`maxmemory` is smaller than the documents queued: Redis holds pointers, S3 (moto) the documents."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import boto3
import pytest
import redis

from batchline.config.settings import Settings
from batchline.local_services import RedisServer
from batchline.producers.producer import Producer
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e
N, DOC_BYTES, MAXMEMORY = 120, 400_000, 32 * 1024 * 1024  # 48 MB of documents, 32 MB of Redis


def doc(i: int) -> dict:
    blob = (hashlib.sha256(str(i).encode()).hexdigest() * (DOC_BYTES // 64 + 1))[:DOC_BYTES]
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 32,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": blob}, {"type": "text", "text": f"extract {i}"}]}
        ],
    }


@pytest.fixture
def small_redis():
    server = RedisServer(appendonly=False).start()
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory", MAXMEMORY)
    client.config_set("maxmemory-policy", "noeviction")
    yield server, client
    client.close()
    server.stop()


def test_documents_bigger_than_redis_are_delivered_once(e2e_env, small_redis, processes, s3_server, s3_bucket):
    server, client = small_redis
    env = {
        **e2e_env,
        "BATCHLINE_REDIS_URL": server.url,
        "BATCHLINE_PARAMS_GC_GRACE_SECONDS": "0",
        "BATCHLINE_MAX_BATCH_REQUESTS": "50",
    }
    producer = Producer.from_settings(Settings.from_env(env))
    report = producer.submit_many(
        ({"custom_id": f"doc-{i}", "params": doc(i)} for i in range(N)), reply_to="redis-stream:replies", chunk_size=20
    )
    assert report.accepted == N
    queued_peak = int(client.info("memory")["used_memory"])
    worker = processes(["worker", "--role", "all", "--concurrency", "2"], env)
    beat = processes(["beat"], env)
    wait_for(
        lambda: client.xlen("replies") >= N, 180, lambda: f"{client.xlen('replies')} of {N} delivered", (worker, beat)
    )
    ids = Counter()
    for _, raw in client.xrange("replies"):
        f = {k.decode(): v.decode() for k, v in raw.items()}
        assert f["outcome"] == "succeeded", f
        ids[f["custom_id"]] += 1
    assert len(ids) == N and max(ids.values()) == 1
    info = client.info("memory")
    assert int(info["used_memory_peak"]) < MAXMEMORY < N * DOC_BYTES
    assert queued_peak < 8 * 1024 * 1024  # pointers, not documents
    s3 = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1")

    def params_left() -> int:
        return int(s3.list_objects_v2(Bucket=s3_bucket, Prefix="batchline/params/").get("KeyCount", 0))

    wait_for(lambda: params_left() == 0, 30, lambda: f"{params_left()} params objects left", (worker, beat))
    assert json.loads(client.xrange("replies", count=1)[0][1][b"result"])["type"] == "succeeded"
