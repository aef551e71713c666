"""Admission control: global and per-tenant limits refuse new requests with `Backpressure` naming the
limit, before Redis is full; what was accepted still completes. Real Redis (one with a small
maxmemory for the high-water mark), the emulator over HTTP, the real CLI for the exit code."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
import redis

from batchline.config.settings import Settings
from batchline.errors import Backpressure
from batchline.local_services import RedisServer
from batchline.producers.producer import Producer
from batchline.workers import aggregator
from batchline.workers.context import Context
from tests.integration.pipeline import drain, entries


def params(i: int, pad: int = 0) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 8,
            "messages": [{"role": "user", "content": f"n{i} " + "x" * pad}]}


def items(n: int, start: int = 0, pad: int = 0) -> list[dict]:
    return [{"custom_id": f"r-{i}", "params": params(i, pad)} for i in range(start, start + n)]


def test_tenant_limit_refuses_with_the_limit_named_and_frees_as_it_drains(pipeline_settings, redis_client):
    s = pipeline_settings.replace(s3_bucket=None, tenant_max_queued_requests=50)
    producer = Producer.from_settings(s)
    with pytest.raises(Backpressure) as exc:
        producer.submit_many(items(80), tenant="noisy", reply_to="redis-stream:adm-noisy", chunk_size=30)
    bp = exc.value
    assert (bp.limit, bp.current, bp.maximum, bp.tenant, bp.index) == ("tenant_queued_requests", 50, 50, "noisy", 50)
    assert "BATCHLINE_TENANT_MAX_QUEUED_REQUESTS" in str(bp) and "'noisy'" in str(bp)
    assert bp.report.accepted == 50
    assert producer.status("r-49", tenant="noisy") is not None and producer.status("r-50", tenant="noisy") is None
    with pytest.raises(Backpressure):
        producer.submit("one-more", params(0), tenant="noisy")
    assert producer.submit("r-0", params(0), tenant="noisy", reply_to="redis-stream:adm-noisy") == "duplicate"
    # another tenant is not affected
    assert producer.submit_many(items(20), tenant="quiet", reply_to="redis-stream:adm-quiet").accepted == 20
    drain(Context(s))
    assert len(entries(redis_client, "adm-noisy")) == 50  # every accepted one delivered
    # delivered: no longer queued, the tenant may submit again
    assert producer.submit_many(items(30, start=50), tenant="noisy", reply_to="redis-stream:adm-noisy").accepted == 30


def test_per_tenant_settings_and_byte_limits(settings):
    s = settings.replace(tenant_max_queued_requests=10, tenant_limits={"big": (0, -1), "tiny": (-1, 3000)})
    producer = Producer.from_settings(s)
    assert producer.submit_many(items(100), tenant="big").accepted == 100  # 0: no request limit for it
    with pytest.raises(Backpressure) as exc:
        producer.submit_many(items(10, pad=500), tenant="tiny")
    assert exc.value.limit == "tenant_queued_bytes" and exc.value.maximum == 3000
    assert 0 < exc.value.report.accepted < 10 and exc.value.current <= 3000
    assert "BATCHLINE_TENANT_LIMITS" in str(exc.value)
    # canceled requests are no longer held
    assert producer.cancel("r-0", tenant="tiny") == "removed"
    assert producer.submit("later", params(1, pad=500), tenant="tiny") == "accepted"


def test_global_queued_limits_and_workers_keep_working(pipeline_settings):
    s = pipeline_settings.replace(s3_bucket=None, max_queued_requests=40, max_batch_requests=25)
    producer = Producer.from_settings(s)
    assert producer.submit_many(items(25), tenant="a").accepted == 25
    with pytest.raises(Backpressure) as exc:
        producer.submit_many(items(25), tenant="b")
    assert (exc.value.limit, exc.value.maximum, exc.value.report.accepted) == ("queued_requests", 40, 15)
    assert "BATCHLINE_MAX_QUEUED_REQUESTS" in str(exc.value)
    ctx = Context(s)
    assert aggregator.pack(ctx)  # intake is refused, packing goes on: pending drains into a batch
    assert producer.submit_many(items(10, start=15), tenant="b").accepted == 10
    s2 = s.replace(max_queued_requests=0, max_queued_bytes=3000)
    with pytest.raises(Backpressure) as exc:
        Producer.from_settings(s2).submit_many(items(50, start=100), tenant="c")
    assert exc.value.limit == "queued_bytes"


@pytest.fixture
def small_redis() -> Iterator[RedisServer]:
    server = RedisServer(appendonly=False).start()
    client = redis.Redis.from_url(server.url)
    client.config_set("maxmemory", str(12 * 1024 * 1024))
    client.config_set("maxmemory-policy", "noeviction")
    client.close()
    yield server
    server.stop()


def test_small_maxmemory_submit_until_refused_then_everything_accepted_is_delivered(small_redis, emulator):
    s = Settings(redis_url=small_redis.url, key_prefix="mem", anthropic_api_key="test-key",
                 anthropic_base_url=emulator.base_url, max_wait_seconds=0.0, fresh_batch_grace_seconds=30.0,
                 clock_skew_seconds=1.0, max_batch_requests=2000)
    producer = Producer.from_settings(s)
    client = producer.redis
    accepted, start = 0, 0
    with pytest.raises(Backpressure) as exc:
        while start < 100_000:
            report = producer.submit_many(items(500, start=start, pad=1500), reply_to="redis-stream:mem-out")
            accepted += report.accepted
            start += 500
    accepted += exc.value.report.accepted
    info = client.info("memory")
    assert exc.value.limit == "memory" and "BATCHLINE_INTAKE_MEMORY_PERCENT" in str(exc.value)
    assert exc.value.maximum == int(info["maxmemory"]) * 80 // 100
    assert info["used_memory"] < info["maxmemory"], "refused before Redis was full"
    assert accepted > 2000
    drain(Context(s), timeout=120)  # pack, poll, collect and deliver all work while intake was refused
    delivered = entries(client, "mem-out")
    assert len(delivered) == accepted
    assert all(e["outcome"] == "succeeded" for e in delivered.values())
    assert client.info("memory")["used_memory"] < client.info("memory")["maxmemory"]


def test_cli_exit_code_for_backpressure(settings, tmp_path):
    path = tmp_path / "many.jsonl"
    import json

    path.write_text("".join(json.dumps(i) + "\n" for i in items(12)))
    env = {**os.environ, "BATCHLINE_REDIS_URL": settings.redis_url, "BATCHLINE_KEY_PREFIX": settings.key_prefix,
           "BATCHLINE_TENANT_MAX_QUEUED_REQUESTS": "5"}
    done = subprocess.run([sys.executable, "-m", "batchline.cli", "submit", str(path), "--no-progress",
                           "--tenant", f"cli-{uuid.uuid4().hex[:6]}"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "accepted: 5  duplicate: 0  rejected: 0"
    assert lines[1].startswith("stopped at line 6, not stored from there on: backpressure: tenant ")
    assert "BATCHLINE_TENANT_MAX_QUEUED_REQUESTS" in lines[1]
