"""Session-wide real services: a redis-server on a free port and moto's S3 server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis

from batchline.config.settings import Settings
from batchline.local_services import MotoS3, RedisServer

# Credentials for moto only; never real ones.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoS3]:
    server = MotoS3().start()
    yield server
    server.stop()


@pytest.fixture
def settings(redis_server: RedisServer) -> Settings:
    """Settings for one test: its own key prefix, so tests never see each other's records."""
    return Settings(redis_url=redis_server.url, key_prefix=f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def emulator():
    """The Message Batches API stand-in, in this process, on a free port (HTTP only)."""
    from batchline.emulator import EmulatorConfig, run_in_thread

    with run_in_thread(EmulatorConfig(processing_seconds=0.3, seed=3)) as emu:
        yield emu


@pytest.fixture
def s3_bucket(s3_server):
    import boto3

    name = f"bl-{uuid.uuid4().hex[:10]}"
    client = boto3.client("s3", endpoint_url=s3_server.url, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    yield name
    client.close()


@pytest.fixture
def pipeline_settings(settings, emulator, s3_server, s3_bucket) -> Settings:
    return settings.replace(
        anthropic_api_key="test-key",
        anthropic_base_url=emulator.base_url,
        s3_bucket=s3_bucket,
        s3_endpoint_url=s3_server.url,
        max_wait_seconds=0.0,
        fresh_batch_grace_seconds=30.0,
        clock_skew_seconds=1.0,
        reconcile_delay_seconds=0.5,
    )
