"""A workspace shared with another application, with real worker and beat processes: it creates
batches of exactly our batch size every half second while our creates fail before creating and
after creating, and the list API answers short pages. Nothing lost, nothing delivered or billed
twice, nothing of the other application's adopted, canceled or stored."""

from __future__ import annotations

import time

import boto3
import pytest

from tests.e2e.chaos import Chaos

pytestmark = pytest.mark.e2e
PER_TENANT = 150
BATCH = 50


def test_foreign_batches_of_our_size_while_creates_fail(e2e_env, emulator, processes):
    env = {**e2e_env, "BATCHLINE_MAX_BATCH_REQUESTS": str(BATCH)}
    emulator.set_faults(foreign_batch_requests=BATCH, foreign_every_real_seconds=0.5, list_page_max=10,
                        http_500_rate=0.3, fault_operations=("create",), create_lost_reply_rate=0.3, seed=11)
    chaos = Chaos(env, emulator, PER_TENANT)
    procs = [processes(["worker", "--role", "all", "--concurrency", "2"], env), processes(["beat"], env)]
    t0 = time.monotonic()
    chaos.submit()
    chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 120, "all delivered", procs)
    time.sleep(1.0)  # anything delivered twice would show by now
    result = chaos.measure("foreign batches", t0)
    assert result.lost == 0 and result.duplicated == 0 and result.billed_twice == 0, result
    books = emulator.books()
    faults = books["http_faults"]
    assert faults.get("http_500", 0) > 0 and faults.get("create_lost_reply", 0) > 0, faults  # both bit
    foreign = books["foreign"]
    assert foreign["batches_created"] > 0 and foreign["canceled"] == 0 and foreign["deleted"] == 0, foreign
    s3 = boto3.client("s3", endpoint_url=env["BATCHLINE_S3_ENDPOINT_URL"], region_name="us-east-1")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=env["BATCHLINE_S3_BUCKET"])
            for o in page.get("Contents", [])]
    theirs = set(foreign["batch_ids"])
    assert keys and not [k for k in keys if any(pid in k for pid in theirs)]
    raw = [k for k in keys if "/batches/" in k]
    assert len(raw) == books["batches_created"], (raw, books["batches_created"])  # ours, every one adopted or saved
