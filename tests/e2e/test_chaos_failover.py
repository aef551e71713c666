"""Chaos rows for a Redis that fails over: a primary, one replica and three sentinels (real
redis-servers on loopback), real worker and beat processes on a sentinel BATCHLINE_REDIS_URL, and a
SIGKILL of the primary while requests are being submitted and delivered. The sentinels promote the
replica; every role must go on against it by itself.

With BATCHLINE_REDIS_MIN_REPLICAS=1 nothing acknowledged may be lost, delivered twice or billed twice.
With 0 the row reports what the failover cost (asynchronous replication may drop acknowledged writes).
Before the kill the replica is made to fall behind (stopped until the primary drops it), as a replica
across a network may be when its primary dies; on loopback it would otherwise keep up within bytes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import redis

from batchline.config.settings import Settings
from batchline.errors import RetryableError
from batchline.keys import request_id
from batchline.local_sentinel import SentinelGroup
from batchline.producers.producer import Producer
from tests.e2e.chaos import TENANTS, Chaos, params
from tests.e2e.test_chaos import check, check_logs, start

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]
PER_TENANT = 1500
CHUNK = 50


class Submitter(threading.Thread):
    """A caller submitting in chunks, retrying a chunk until it is acknowledged, as a client must."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.env, self.acknowledged, self.retries, self.error = env, 0, 0, None
        self.go = threading.Event()  # the second half waits for the fault to begin, however slow the machine

    def run(self) -> None:
        try:
            producer = Producer.from_settings(Settings.from_env(self.env))
            for lo in range(0, PER_TENANT, CHUNK):
                if lo == PER_TENANT // 2:
                    self.go.wait(300)
                for tenant in TENANTS:
                    chunk = [{"custom_id": f"c-{i}", "params": params(i, tenant)} for i in range(lo, lo + CHUNK)]
                    while True:
                        try:
                            report = producer.submit_many(chunk, tenant=tenant, reply_to=f"redis-stream:chaos:{tenant}")
                            break
                        except (redis.RedisError, RetryableError):
                            self.retries += 1
                            time.sleep(0.2)
                    assert report.accepted + report.duplicate == CHUNK, report
                    self.acknowledged += CHUNK
                time.sleep(0.15 if lo < PER_TENANT // 2 else 0.3)  # a caller's pace: the kill lands while requests arrive
        except BaseException as exc:  # surfaced by the test
            self.error = exc


@pytest.mark.parametrize("min_replicas", [1, 0])
def test_primary_sigkilled_mid_run_replica_promoted(chaos_env, emulator, processes, chaos_report, min_replicas):
    group = SentinelGroup().start()
    try:
        env = {**chaos_env, "BATCHLINE_REDIS_URL": group.url, "BATCHLINE_REDIS_MIN_REPLICAS": str(min_replicas),
               "BATCHLINE_REDIS_WAIT_TIMEOUT_MS": "500"}
        emulator.set_faults(processing_seconds=1.5)
        chaos = Chaos(env, emulator, PER_TENANT)
        procs = start(processes, env)
        submitter = Submitter(env)
        submitter.start()
        chaos.wait(lambda: submitter.acknowledged >= PER_TENANT and chaos.batches_submitted() >= 1, 90,
                   "half submitted and a batch out", procs)
        # as across a network: the replica falls behind while requests arrive, then the primary dies
        lagged = lag_the_replica(group, submitter.go)
        t0 = time.monotonic()
        group.primary.kill()
        os.kill(group.replicas[0].proc.pid, signal.SIGCONT)
        assert submitter.acknowledged < 2 * PER_TENANT, "the fault must land mid-submission"
        group.wait_primary()
        promoted_after = time.monotonic() - t0
        # its supervisor starts the old primary again; the sentinels make it the new primary's replica
        # (until then, with MIN_REPLICAS=1 nothing is acknowledged: durability over availability)
        group.primary.start()
        submitter.join(180)
        assert submitter.error is None, submitter.error
        assert submitter.acknowledged == 2 * PER_TENANT
        # every request the new primary holds is delivered (with 0, those the failover lost are not coming)
        chaos.wait(lambda: chaos.delivered_count() >= held(chaos), 180, "every held request delivered", procs)
        time.sleep(1.0)  # a second delivery would show by now
        restarts = sum(p.restarts for p in procs)
        result = chaos.measure(
            f"the replica {lagged:.1f} s behind (stopped, dropped by the primary), then SIGKILL the Redis primary "
            f"mid-run; sentinels promote the replica in {promoted_after:.1f} s, "
            "the old primary restarts as its replica; "
            f"MIN_REPLICAS={min_replicas}; the caller retried {submitter.retries} chunk(s)"
            + (f"; {restarts} process restart(s)" if restarts else ""), t0)
        chaos_report.append(result)
        check_logs(procs)
        if min_replicas:
            check(result)
        else:  # reported, not required: the figure that motivates the setting
            assert result.duplicated == 0, result
    finally:
        group.stop()


def lag_the_replica(group: SentinelGroup, go: threading.Event) -> float:
    """Stop the replica until the primary drops it (repl-timeout 1 s), then let the primary take writes
    the replica will never see: the window asynchronous replication leaves open on a real network
    (a loopback replica otherwise keeps up within bytes). Returns how long the replica has been behind."""
    primary = group.client(group.primary.port)
    primary.config_set("repl-timeout", 1)
    started = time.monotonic()
    os.kill(group.replicas[0].proc.pid, signal.SIGSTOP)
    go.set()
    deadline = started + 10
    while int(primary.info("replication")["connected_slaves"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # writes on the primary alone
    return time.monotonic() - started


def held(chaos: Chaos) -> int:
    """How many of the submitted requests have a record on the primary now (more than all while unreachable)."""
    try:
        pipe = chaos.client.pipeline(transaction=False)
        for tenant in TENANTS:
            for i in range(PER_TENANT):
                pipe.exists(chaos.keys.request(request_id(tenant, f"c-{i}")))
        return sum(pipe.execute())
    except redis.RedisError:
        return 2 * PER_TENANT + 1


def test_replica_promoted_while_a_result_worker_is_mid_file(e2e_env, emulator, processes, chaos_report):
    """`SENTINEL FAILOVER` (the replica promoted, the primary demoted) while one 3,000-line results file
    is being delivered, with S3 on (moto) so delivery takes seconds: every result reaches its stream
    exactly once."""
    group = SentinelGroup().start()
    try:
        env = {**e2e_env, "BATCHLINE_REDIS_URL": group.url, "BATCHLINE_REDIS_MIN_REPLICAS": "1",
               "BATCHLINE_REDIS_WAIT_TIMEOUT_MS": "500", "BATCHLINE_MAX_BATCH_REQUESTS": "3000",
               "BATCHLINE_MAX_WAIT_SECONDS": "3"}
        emulator.set_faults(processing_seconds=1.0)
        chaos = Chaos(env, emulator, PER_TENANT)
        chaos.submit()  # before the workers start: one batch of 3,000
        procs = start(processes, env)
        chaos.wait(lambda: chaos.delivered_count() > 0, 120, "the first deliveries", procs)
        mid = chaos.delivered_count()
        assert 0 < mid < 2 * PER_TENANT, "the failover must land mid-file"
        t0 = time.monotonic()
        old = group.primary.port
        redis.Redis(port=group.sentinels[0].port).execute_command("SENTINEL", "FAILOVER", "batchline")
        group.wait_primary()
        assert group.current_primary_port() != old
        chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 180, "all delivered", procs)
        time.sleep(1.0)  # a second delivery would show by now
        result = chaos.measure(f"replica promoted (SENTINEL FAILOVER) while a result worker is mid-file "
                               f"({mid} of {2 * PER_TENANT} delivered); MIN_REPLICAS=1, S3 on", t0)
        chaos_report.append(result)
        check_logs(procs)
        check(result)
    finally:
        group.stop()
