"""Redis behind Sentinel (real redis-servers: a primary, a replica, three sentinels on loopback).

A sentinel BATCHLINE_REDIS_URL reaches the primary; when the primary dies and the sentinels promote the
replica, the same client goes on against the new primary without a restart. With
BATCHLINE_REDIS_MIN_REPLICAS, an acknowledgement means the replica has the write: a write the replica
does not take in time is answered as `NotReplicated` (a RetryableError), and retrying is idempotent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from batchline.config.settings import Settings
from batchline.errors import NotReplicated
from batchline.local_sentinel import SentinelGroup
from batchline.producers.producer import Producer
from batchline.replication import describe
from batchline.reports import snapshot
from batchline.tenants import Tenant
from batchline.workers import aggregator, poller
from batchline.workers.context import Context

pytestmark = pytest.mark.slow


@pytest.fixture
def group() -> Iterator[SentinelGroup]:
    g = SentinelGroup().start()
    yield g
    g.stop()


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"q {i}"}]}


def items(tag: str, n: int) -> list[dict]:
    return [{"custom_id": f"{tag}-{i}", "params": params(i)} for i in range(n)]


def retried(call, timeout: float = 30.0):
    """What a caller does on a failover: retry a call that could not reach Redis."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_producer_and_worker_clients_follow_a_failover(group):
    s = Settings(redis_url=group.url, key_prefix=f"s{uuid.uuid4().hex[:6]}")
    producer, ctx = Producer.from_settings(s), Context(s)
    assert producer.submit_many(items("before", 50)).accepted == 50
    old = group.primary.port
    redis.Redis(port=old).execute_command("WAIT", 1, 5000)
    shown = snapshot(ctx.redis, ctx.keys).redis  # what `batchline status` shows
    assert (shown["role"], shown["replicas"], shown["in_sync"]) == ("master", 1, 1)
    assert 0 <= shown["lag_bytes"] < 10_000  # the sentinels' own chatter, at most
    assert describe(shown, 1).startswith("master, 1 of 1 replicas in sync, lag 0 s (")
    assert describe(shown, 1).endswith("; writes wait for 1 (BATCHLINE_REDIS_MIN_REPLICAS)")
    group.primary.kill()
    new = group.wait_primary()
    assert new != old
    report = retried(lambda: producer.submit_many(items("after", 50)))
    assert report.accepted == 50
    assert retried(lambda: ctx.redis.info("server"))["tcp_port"] == new  # the worker's client moved too
    states = {producer.status(f"{t}-{i}")["state"] for t in ("before", "after") for i in range(50)}
    assert states == {"queued"}
    assert int(ctx.redis.hget(ctx.keys.stats, "pending")) == 100
    shown = snapshot(ctx.redis, ctx.keys).redis
    assert (shown["role"], shown["in_sync"]) == ("master", 0)  # the old primary is dead: no replica now
    assert "TOO FEW IN SYNC" in describe(shown, 1)


def test_min_replicas_acknowledges_only_replicated_writes(group):
    s = Settings(redis_url=group.url, key_prefix=f"r{uuid.uuid4().hex[:6]}", redis_min_replicas=1,
                 redis_wait_timeout_ms=300)
    producer = Producer.from_settings(s)
    assert producer.submit_many(items("ok", 10)).accepted == 10
    replica = group.replicas[0]
    os.kill(replica.proc.pid, signal.SIGSTOP)  # the replica stops taking the stream
    try:
        started = time.monotonic()
        with pytest.raises(NotReplicated, match="reached 0 of 1 replicas in 300 ms"):
            producer.submit_many(items("late", 10))
        assert time.monotonic() - started < 3
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    report = producer.submit_many(items("late", 10))  # the caller retries: idempotent, now replicated
    assert (report.accepted, report.duplicate) == (0, 10)
    on_replica = redis.Redis(port=replica.port)
    assert all(on_replica.exists(producer.keys.request(producer.status(f"late-{i}")["request_id"]))
               for i in range(10))
    with pytest.raises(NotReplicated, match="of 2 replicas"):  # more replicas than there are: never acked
        Producer.from_settings(s.replace(redis_min_replicas=2)).submit("x-1", params(1))


def test_submit_cli_answers_not_replicated_in_one_line_exit_3(group, tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps({"custom_id": "cli-1", "params": params(1)}) + "\n")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BATCHLINE_")},
           "BATCHLINE_REDIS_URL": group.url, "BATCHLINE_KEY_PREFIX": f"c{uuid.uuid4().hex[:6]}",
           "BATCHLINE_REDIS_MIN_REPLICAS": "2", "BATCHLINE_REDIS_WAIT_TIMEOUT_MS": "100"}
    done = subprocess.run([sys.executable, "-m", "batchline.cli", "submit", str(path)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]  # after the progress bar's line
    assert last.startswith("batchline submit: Redis: intake reached 1 of 2 replicas in 100 ms"), done.stderr
    assert "Traceback" not in done.stderr


def test_an_intent_not_replicated_gives_the_requests_back_at_once_and_creates_nothing(group, emulator):
    """MIN_REPLICAS=2 with one replica: every acknowledgement times out, yet each write is applied on
    the primary. A pack then makes no create and leaves no batch stranded in `creating`."""
    s = Settings(redis_url=group.url, key_prefix=f"i{uuid.uuid4().hex[:6]}", redis_min_replicas=2,
                 redis_wait_timeout_ms=50, anthropic_api_key="k", anthropic_base_url=emulator.base_url,
                 max_wait_seconds=0.0)
    producer = Producer.from_settings(s)
    with pytest.raises(NotReplicated):
        producer.submit_many(items("i", 5))
    assert {producer.status(f"i-{n}")["state"] for n in range(5)} == {"queued"}  # applied, not acknowledged
    ctx = Context(s)
    created = aggregator.pack(ctx)
    assert [c.outcome for c in created][:1] == ["released"]
    assert emulator.books()["operations"].get("create", 0) == 0
    assert ctx.redis.zcard(ctx.keys.leases) == 0  # nothing waits for a lease to run out
    assert {producer.status(f"i-{n}")["state"] for n in range(5)} == {"queued"}


def test_a_poll_round_goes_on_past_an_ended_transition_not_replicated(group, emulator):
    """Two batches end; the replicas acknowledge neither transition in time. The round still marks and
    hands off both (each applied on the primary), and a second round hands off neither again."""
    s = Settings(redis_url=group.url, key_prefix=f"p{uuid.uuid4().hex[:6]}", anthropic_api_key="k",
                 anthropic_base_url=emulator.base_url, max_wait_seconds=0.0, max_batch_requests=5)
    assert Producer.from_settings(s).submit_many(items("p", 10)).accepted == 10
    ctx = Context(s)
    assert [c.outcome for c in aggregator.pack(ctx)] == ["submitted", "submitted"]
    slow = Context(s.replace(redis_min_replicas=2, redis_wait_timeout_ms=50))  # one replica: never acked
    handed: list[str] = []
    deadline = time.monotonic() + 15
    while len(handed) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
        slow.redis.delete(slow.keys.poll_lock())
        report = poller.poll(slow, handed.append)
        assert report.failed is None
        assert sorted(report.not_replicated) == sorted(report.ended)
    assert len(set(handed)) == 2
    slow.redis.delete(slow.keys.poll_lock())
    again = poller.poll(slow, handed.append)
    assert (again.ended, len(handed)) == ([], 2)


def test_a_gateway_create_not_replicated_cancels_every_request_it_stored(group, monkeypatch):
    """The gateway answers 529 and abandons the client batch: every request it stored is canceled, not
    only the first chunk's, so a client's retry (a new batch id) is not billed twice."""
    from batchline.gateway import batches as gateway_batches
    from batchline.gateway.batches import Batches, new_id, prefix_of

    monkeypatch.setattr(gateway_batches, "CHUNK", 100)  # the abandon cancels in chunks smaller than intake's

    s = Settings(redis_url=group.url, key_prefix=f"g{uuid.uuid4().hex[:6]}", redis_min_replicas=2,
                 redis_wait_timeout_ms=50)
    producer = Producer.from_settings(s)
    tenant, gid, n = Tenant("gw"), new_id(), 2500
    batches = Batches(producer)
    requests = [(f"q-{i}", params(i)) for i in range(n)]
    _cids, encoded = batches.encode(tenant, gid, requests)
    with pytest.raises(NotReplicated):
        batches.create(tenant, gid, [cid for cid, _ in requests], encoded)
    found = [producer.status(f"{prefix_of(gid)}{i}", tenant="gw") for i in range(n)]
    states = Counter(f["state"] for f in found if f is not None)  # intake stopped at its first chunk
    assert set(states) <= {"canceling", "canceled"} and sum(states.values()) >= 1000, states
    assert int(producer.redis.hget(producer.keys.stats, "pending") or 0) == 0  # nothing left to be billed


def test_passwords_on_the_servers_and_on_the_sentinels():
    """Production's shape: the primary and replica require a password, the sentinels one of their own
    (`?sentinel_password=`), both with characters that must be percent-encoded. A wrong one is a clear
    refusal that does not show the password."""
    g = SentinelGroup(password="p@ss/w+rd", sentinel_password="s#nt+1").start()
    try:
        s = Settings.from_env({"BATCHLINE_REDIS_URL": g.url, "BATCHLINE_KEY_PREFIX": "pw"})
        producer = Producer.from_settings(s)
        assert producer.submit_many(items("pw", 5)).accepted == 5
        assert Context(s).redis.info("replication")["connected_slaves"] == 1
        wrong = g.url.replace("p%40ss", "nope")
        with pytest.raises(redis.AuthenticationError) as err:
            Producer.from_settings(Settings.from_env({"BATCHLINE_REDIS_URL": wrong})).submit("x", params(1))
        assert "nope" not in str(err.value) and "w+rd" not in str(err.value)
        done = subprocess.run([sys.executable, "-m", "batchline.cli", "status"], capture_output=True, text=True,
                              env={**os.environ, "BATCHLINE_REDIS_URL": wrong}, timeout=60)
        assert done.returncode == 2 and "Redis refused authentication" in done.stderr, done.stderr
        assert "nope" not in done.stderr and "s#nt" not in done.stderr
    finally:
        g.stop()
