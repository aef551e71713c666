"""Chaos rows for a Redis that fails over: a primary, one replica and three sentinels (real
redis-servers on loopback), real worker and beat processes on a sentinel BATCHLINE_REDIS_URL, and a
SIGKILL of the primary while requests are being submitted and delivered. The sentinels promote the
replica; every role must go on against it by itself.

With BATCHLINE_REDIS_MIN_REPLICAS=1 nothing acknowledged may be lost, delivered twice or billed twice.
With 0 the row reports what the failover cost (asynchronous replication may drop acknowledged writes).
Before the kill the replica is made to fall behind (stopped until the primary drops it), as a replica
across a network may be when its primary dies; on loopback it would otherwise keep up within bytes.

And cluster mode: the same pipeline on a 3-primary Redis Cluster (row 2), exactly once."""

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
from batchline.local_cluster import LocalCluster
from batchline.local_sentinel import SentinelGroup
from batchline.producers.producer import Producer
from batchline.redis_cluster import key_slot
from tests.e2e.chaos import TENANTS, Chaos, params
from tests.e2e.test_chaos import check, check_logs, start

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]
PER_TENANT = 1500
CHUNK = 50


class Submitter(threading.Thread):
    """A caller submitting in chunks, retrying a chunk until it is acknowledged, as a client must."""

    def __init__(self, env: dict[str, str], chaos: Chaos, pause: float = 0.15, hold: bool = False) -> None:
        super().__init__(daemon=True)
        self.env, self.acknowledged, self.retries, self.error = env, 0, 0, None
        self.stream, self.pause = chaos.stream, pause
        # with `hold`, the second half waits for the fault to begin (however slow the machine), then goes slower
        self.hold, self.go = hold, threading.Event()

    def run(self) -> None:
        try:
            producer = Producer.from_settings(Settings.from_env(self.env))
            for lo in range(0, PER_TENANT, CHUNK):
                if self.hold and lo == PER_TENANT // 2:
                    self.go.wait(300)
                for tenant in TENANTS:
                    chunk = [{"custom_id": f"c-{i}", "params": params(i, tenant)} for i in range(lo, lo + CHUNK)]
                    while True:
                        try:
                            report = producer.submit_many(chunk, tenant=tenant, reply_to=f"redis-stream:{self.stream(tenant)}")
                            break
                        except (redis.RedisError, RetryableError):
                            self.retries += 1
                            time.sleep(0.2)
                    assert report.accepted + report.duplicate == CHUNK, report
                    self.acknowledged += CHUNK
                # a caller's pace: the kill lands while requests arrive
                time.sleep(2 * self.pause if self.hold and lo >= PER_TENANT // 2 else self.pause)
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
        submitter = Submitter(env, chaos, hold=True)
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


def test_pipeline_on_a_three_primary_redis_cluster(chaos_env, emulator, processes, chaos_report):
    """Row 2: a Redis Cluster of three primaries (`redis-server --cluster-enabled yes`, `redis-cli --cluster
    create`), every role on a `redis+cluster://` URL naming all three; 3,000 requests submitted while real
    worker and beat processes pack and deliver them: exactly once, and every key in the one slot."""
    cluster = LocalCluster().start()
    try:
        env = {**chaos_env, "BATCHLINE_REDIS_URL": cluster.url}
        emulator.set_faults(processing_seconds=1.0)
        chaos = Chaos(env, emulator, PER_TENANT)
        assert chaos.keys.tag == env["BATCHLINE_KEY_PREFIX"]  # `eNNN` became `{eNNN}`
        procs = start(processes, env)
        t0 = time.monotonic()
        submitter = Submitter(env, chaos)
        submitter.start()
        submitter.join(180)
        assert submitter.error is None, submitter.error
        assert submitter.acknowledged == 2 * PER_TENANT
        chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 180, "all delivered", procs)
        time.sleep(1.0)  # a second delivery would show by now
        owner = cluster.owner_port(chaos.keys.prefix)
        others = sum(cluster.client(n.port).dbsize() for n in cluster.nodes if n.port != owner)
        result = chaos.measure(f"none: a 3-primary Redis Cluster (redis+cluster://), every role on the node of "
                               f"slot {key_slot(chaos.keys.prefix)}; keys on the other primaries: {others}", t0)
        chaos_report.append(result)
        check_logs(procs)
        check(result)
        assert others == 0  # batchline's keys and the broker's, all in the one slot
    finally:
        cluster.stop()


def test_slot_primary_sigkilled_on_a_cluster_mid_run(chaos_env, emulator, processes, chaos_report):
    """Row 2b: the same cluster with a replica per primary; SIGKILL the primary serving batchline's slot
    while requests are submitted and delivered. The cluster promotes its replica; every role follows the
    slot by itself. MIN_REPLICAS=1: nothing acknowledged may be lost, delivered twice or billed twice."""
    cluster = LocalCluster(masters=3, replicas=1).start()
    try:
        env = {**chaos_env, "BATCHLINE_REDIS_URL": cluster.url, "BATCHLINE_REDIS_MIN_REPLICAS": "1",
               "BATCHLINE_REDIS_WAIT_TIMEOUT_MS": "500"}
        emulator.set_faults(processing_seconds=1.5)
        chaos = Chaos(env, emulator, PER_TENANT)
        procs = start(processes, env)
        submitter = Submitter(env, chaos, pause=0.4)  # slower: the first batch is out before half is in
        submitter.start()
        chaos.wait(lambda: submitter.acknowledged >= PER_TENANT // 2 and chaos.batches_submitted() >= 1, 90,
                   "a quarter submitted and a batch out", procs)
        old = cluster.owner_port(chaos.keys.prefix)
        node = next(n for n in cluster.nodes if n.port == old)
        t0 = time.monotonic()
        node.kill()
        assert submitter.acknowledged < 2 * PER_TENANT, "the fault must land mid-submission"
        cluster.wait_owner_change(chaos.keys.prefix, old)
        promoted_after = time.monotonic() - t0
        node.start()  # back with its nodes.conf: it rejoins as the promoted replica's replica
        submitter.join(180)
        assert submitter.error is None, submitter.error
        assert submitter.acknowledged == 2 * PER_TENANT
        chaos.wait(lambda: chaos.delivered_count() >= 2 * PER_TENANT, 180, "all delivered", procs)
        time.sleep(1.0)  # a second delivery would show by now
        restarts = sum(p.restarts for p in procs)
        result = chaos.measure(
            f"SIGKILL the primary of batchline's slot on a 3-primary Redis Cluster mid-run, its replica promoted "
            f"in {promoted_after:.1f} s, the old primary restarts as its replica; MIN_REPLICAS=1; the caller "
            f"retried {submitter.retries} chunk(s)" + (f"; {restarts} process restart(s)" if restarts else ""), t0)
        chaos_report.append(result)
        check_logs(procs)
        check(result)
    finally:
        cluster.stop()
