"""Cluster mode against a real 3-primary Redis Cluster on loopback (batchline/local_cluster.py).

Intake, packing and delivery run their Lua scripts on the node that owns the slot of the key prefix's
hash tag; every key batchline writes lands in that one slot (the other nodes hold none); a reply stream
without the tag is refused at intake; the client follows its slot to another node (MOVED)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from batchline.config.settings import Settings
from batchline.errors import InvalidRequest
from batchline.local_cluster import LocalCluster
from batchline.producers.producer import Producer
from batchline.redis_client import connect
from batchline.redis_cluster import key_slot
from batchline.redis_url import broker
from batchline.reports import snapshot
from batchline.workers.app import create_app
from batchline.workers.context import Context
from tests.integration.pipeline import drain, entries

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    c = LocalCluster().start()
    yield c
    c.stop()


@pytest.fixture
def fresh_cluster() -> Iterator[LocalCluster]:
    """A cluster of this test's own: "the other nodes hold no key" means no key of this test went elsewhere."""
    c = LocalCluster().start()
    yield c
    c.stop()


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"q {i}"}]}


def test_intake_pack_deliver_in_one_slot(fresh_cluster, pipeline_settings):
    cluster = fresh_cluster
    s = pipeline_settings.replace(redis_url=cluster.url, max_batch_requests=150)
    tag = s.key_prefix
    assert tag.startswith("{") and tag.endswith("}")  # `tNNN` became `{tNNN}`
    producer, ctx = Producer.from_settings(s), Context(s)
    owner = cluster.owner_port(tag)
    assert ctx.redis.info("server")["tcp_port"] == owner  # bound to the node serving the slot
    stream = f"{tag}.out"
    for tenant in ("alpha", "beta"):
        report = producer.submit_many(
            ({"custom_id": f"q-{i}", "params": params(i)} for i in range(200)),
            tenant=tenant,
            reply_to=f"redis-stream:{stream}:{tenant}",
        )
        assert report.accepted == 200
    drain(ctx)
    for tenant in ("alpha", "beta"):
        got = entries(ctx.redis, f"{stream}:{tenant}")  # (fails on a second delivery)
        assert len(got) == 200 and {f["outcome"] for f in got.values()} == {"succeeded"}
        assert producer.status("q-7", tenant=tenant)["state"] == "delivered"
    assert ctx.redis.zcard(ctx.keys.batches) == 3  # 400 requests, 150 per batch
    shown = snapshot(ctx.redis, ctx.keys)  # what `batchline status` shows: the slot's primary, no replica
    assert (shown.redis["role"], shown.redis["replicas"]) == ("master", 0)
    slot = key_slot(tag)
    node = cluster.client(owner)
    assert node.dbsize() == node.execute_command("CLUSTER COUNTKEYSINSLOT", slot) > 0  # all in one slot
    assert all(cluster.client(n.port).dbsize() == 0 for n in cluster.nodes if n.port != owner)


def test_a_reply_stream_without_the_hash_tag_is_refused(cluster, settings):
    s = settings.replace(redis_url=cluster.url)
    producer = Producer.from_settings(s)
    with pytest.raises(InvalidRequest) as err:
        producer.submit("x-1", params(1), reply_to="redis-stream:results")
    assert err.value.field == "reply_to"
    assert f"carries its hash tag, like 'redis-stream:{s.key_prefix}.results'" in str(err.value)
    assert producer.submit("x-2", params(2), reply_to=f"redis-stream:{s.key_prefix}.results") == "accepted"


def test_a_celery_target_goes_through_the_cluster_broker_into_the_slot(cluster, pipeline_settings):
    """reply_to `celery:TASK@QUEUE` on a cluster: sent through kombu with the cluster transport, the queue's
    list is `{prefix}:kombu:QUEUE` on the slot's node; intake checks that key, not a bare `QUEUE`."""
    s = pipeline_settings.replace(redis_url=cluster.url, s3_bucket=None)
    producer, app = Producer.from_settings(s), create_app(s)
    ctx = Context(s, app)
    producer.submit_many(
        ({"custom_id": f"job-{i}", "params": params(i)} for i in range(20)),
        tenant="svc",
        reply_to="celery:downstream.handle_result@downstream",
    )
    drain(ctx)
    queue = f"{s.key_prefix}:kombu:downstream"
    messages = [json.loads(m) for m in ctx.redis.lrange(queue, 0, -1)]
    assert sorted(json.loads(base64.b64decode(m["body"]))[1]["custom_id"] for m in messages) == sorted(
        f"job-{i}" for i in range(20)
    )
    assert {m["headers"]["task"] for m in messages} == {"downstream.handle_result"}
    ctx.redis.hset(f"{s.key_prefix}:kombu:taken", "x", "1")  # the queue's key holds a hash: refused by name
    with pytest.raises(InvalidRequest) as err:
        producer.submit("job-x", params(0), tenant="svc", reply_to="celery:downstream.handle_result@taken")
    assert "celery queue taken: the key holds a hash, not a Celery queue" in str(err.value)


def test_the_gateway_on_a_cluster_through_the_sdk(fresh_cluster, pipeline_settings):
    """A client batch through the gateway (official SDK over HTTP): its records, its custom_id map and its
    result stream (`{prefix}.gw.<id>`) in the slot, its results read back through the same API."""
    import anthropic

    from tests.gateway.conftest import start_rig

    cluster = fresh_cluster
    s = pipeline_settings.replace(redis_url=cluster.url, gateway_rate_limit=10_000)
    rig_iter = start_rig(s)
    rig = next(rig_iter)
    try:
        rig.add("alpha")
        sdk = anthropic.Anthropic(base_url=rig.base_url, api_key=rig.keys["alpha"], max_retries=0)
        batch = sdk.messages.batches.create(requests=[{"custom_id": f"q-{i}", "params": params(i)} for i in range(30)])
        drain(Context(s))
        assert sdk.messages.batches.retrieve(batch.id).request_counts.succeeded == 30
        assert sorted(r.custom_id for r in sdk.messages.batches.results(batch.id)) == sorted(
            f"q-{i}" for i in range(30)
        )
        owner = cluster.owner_port(s.key_prefix)
        assert all(cluster.client(n.port).dbsize() == 0 for n in cluster.nodes if n.port != owner)
    finally:
        next(rig_iter, None)


def test_the_client_follows_its_slot_to_another_node(cluster):
    """A slot reassigned (what a failover or a resharding does) answers MOVED: the client reconnects to
    the new owner by itself, and the command runs there."""
    prefix = f"{{m{uuid.uuid4().hex[:6]}}}"
    r = connect(cluster.url, prefix)
    assert r.get(f"{prefix}:x") is None
    old = cluster.owner_port(prefix)
    new = next(n.port for n in cluster.nodes if n.port != old)
    new_id = cluster.client(new).execute_command("CLUSTER MYID")
    for n in cluster.nodes:  # an empty slot can be handed over without moving keys
        cluster.client(n.port).execute_command("CLUSTER SETSLOT", key_slot(prefix), "NODE", new_id)
    with pytest.raises(redis.exceptions.MovedError):
        redis.Redis(port=old).get(f"{prefix}:x")
    assert r.set(f"{prefix}:x", "1")
    assert r.info("server")["tcp_port"] == new
    assert cluster.client(new).get(f"{prefix}:x") == b"1"


def test_cluster_settings_and_broker():
    s = Settings.from_env(
        {"BATCHLINE_REDIS_URL": "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2/0", "BATCHLINE_KEY_PREFIX": "app"}
    )
    assert s.key_prefix == "{app}"
    assert s.replace(key_prefix=s.key_prefix).key_prefix == "{app}"  # idempotent
    conf = broker(s.redis_url, s.key_prefix)
    assert conf["broker_url"] == "redis://:pw@10.0.0.1:7000/0"
    assert conf["broker_transport"] == "batchline.workers.broker_cluster:Transport"
    assert conf["broker_transport_options"] == {
        "global_keyprefix": "{app}:kombu:",
        "cluster_slot": key_slot("{app}"),
        "cluster_seeds": [["10.0.0.1", 7000], ["10.0.0.2", 6379]],
    }


def test_the_slot_primary_killed_its_replica_takes_over_and_the_clients_go_on():
    """Three primaries with a replica each: SIGKILL the primary serving batchline's slot; the cluster promotes
    its replica (node timeout 2 s) and the same clients go on against it. What was acknowledged with
    MIN_REPLICAS=1 before the kill (WAIT counts the slot primary's replica) is on the promoted replica."""
    group = LocalCluster(masters=3, replicas=1).start()
    try:
        s = Settings(redis_url=group.url, key_prefix=f"f{uuid.uuid4().hex[:6]}", redis_min_replicas=1)
        producer, ctx = Producer.from_settings(s), Context(s)
        assert producer.submit_many({"custom_id": f"a-{i}", "params": params(i)} for i in range(50)).accepted == 50
        old = group.owner_port(s.key_prefix)
        next(n for n in group.nodes if n.port == old).kill()
        new = group.wait_owner_change(s.key_prefix, old)
        # the promoted replica has no replica of its own: with MIN_REPLICAS=1 nothing would be acknowledged
        # now (durability over availability), so the rest goes in on the same client with 0
        same_client = Producer(producer.redis, s.replace(redis_min_replicas=0))
        after = retried(
            lambda: same_client.submit_many({"custom_id": f"b-{i}", "params": params(i)} for i in range(50))
        )
        assert after.accepted == 50
        assert retried(lambda: ctx.redis.info("server"))["tcp_port"] == new
        assert {producer.status(f"a-{i}")["state"] for i in range(50)} == {"queued"}
    finally:
        group.stop()


def retried(call, timeout: float = 30.0):
    """What a caller does while the cluster fails over: retry a call that could not reach the slot's node."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except (redis.ConnectionError, redis.TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
