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
