"""End-to-end fixtures: real `batchline worker` / `batchline beat` processes on a Redis db of their own."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

import pytest
import redis

from batchline.local_services import BatchlineProcess, pipeline_env


@pytest.fixture
def e2e_env(redis_server, emulator, s3_server, s3_bucket) -> dict[str, str]:
    url = redis_server.url.rsplit("/", 1)[0] + "/1"  # broker + data on db 1, emptied per test
    redis.Redis.from_url(url).flushdb()
    return pipeline_env(url, f"e{uuid.uuid4().hex[:6]}", emulator.base_url, s3_bucket, s3_server.url)


@pytest.fixture
def chaos_env(e2e_env):
    """The chaos rows' environment (tests/e2e/test_chaos*.py): batches of 500, no S3, quick probes."""
    return {**e2e_env, "BATCHLINE_S3_BUCKET": "", "BATCHLINE_MAX_BATCH_REQUESTS": "500",
            "BATCHLINE_PAUSE_PROBE_SECONDS": "0.5"}


_CHAOS_ROWS: list = []


@pytest.fixture
def chaos_report():
    """Collects chaos results; with BATCHLINE_CHAOS_REPORT=path the table is written there at the end."""
    return _CHAOS_ROWS


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("BATCHLINE_CHAOS_REPORT")
    if not path or not _CHAOS_ROWS:
        return
    from tests.e2e.chaos import REPORT_HEADER

    rows = "\n".join(r.row() for r in _CHAOS_ROWS)
    intro = (
        "# Chaos suite: figures\n\n"
        "Written by `make chaos` (tests/e2e/test_chaos*.py). Each row is one end-to-end run of "
        f"{_CHAOS_ROWS[0].submitted} requests from 2 tenants through real `batchline worker` and `batchline beat` "
        "processes, the emulator over HTTP and a redis-server with AOF on, with one fault. Lost = submitted "
        "minus distinct delivered; delivered twice = deliveries minus distinct; billed in >1 batch = requests the "
        "emulator's books saw in more than one batch, split into deliberate re-drives (transient errors, expiry) "
        "and the rest (must be 0). Seconds to recover: from the fault (or the submission, for crash points) to "
        "the last delivery. The shared-workspace rows (`test_shared_workspace`, `test_40_cancels_right_after_submission`) "
        "also count another application's batches in the same workspace (`foreign batches`, some of exactly batchline's "
        "batch size, with ids that look like anyone's) and what batchline did to them (`foreign canceled/deleted`, must "
        "be 0; nothing of them is stored or delivered either); their seconds to recover run from the submission. "
        "The failover rows (`test_chaos_failover.py`) run 3,000 requests on a primary, one replica and three "
        "sentinels (a sentinel BATCHLINE_REDIS_URL) instead; lost there counts requests the caller was told were "
        "accepted. The cluster row (`test_pipeline_on_a_three_primary_redis_cluster`) runs them on three Redis "
        "Cluster primaries (a `redis+cluster://` URL, docs/redis.md) with no fault, and counts the keys found on "
        "the primaries that do not serve batchline's slot (must be 0); its failover row gives each primary a "
        "replica and SIGKILLs the one serving batchline's slot mid-run.\n\n"
    )
    with open(path, "w") as f:
        f.write(intro + REPORT_HEADER + "\n" + rows + "\n")


@pytest.fixture
def processes():
    started: list[BatchlineProcess] = []

    def start(args: list[str], env: dict[str, str]) -> BatchlineProcess:
        proc = BatchlineProcess(args, env).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str | Callable[[], str], procs=()) -> None:
    """Poll until `predicate()`; on time-out fail with `what` (or what it returns) and the logs' tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    logs = "\n".join(p.log()[-4000:] for p in procs)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}\n{logs}")
