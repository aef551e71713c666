"""Fair share: a tenant's backlog never starves another. Pending work is kept per tenant and every
batch is filled across tenants by weight (claim.lua), for the Python producer and the gateway alike.
Real Redis, the emulator over HTTP with the official SDK, moto S3."""

from __future__ import annotations

import time
from collections import Counter

from batchline.fairshare import shares
from batchline.fields import R
from batchline.keys import Keys, request_id
from batchline.pending import by_tenant
from batchline.pending import count as pending_count
from batchline.producers.producer import Producer
from batchline.tenants import Tenant, TenantStore
from batchline.workers import aggregator, poller, results
from batchline.workers.context import Context
from batchline.workers.packing import Take
from tests.integration.pipeline import drain


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": f"q{i}"}]}


def tenants_of(ctx: Context, flat: list[bytes]) -> Counter[str]:
    pipe = ctx.redis.pipeline(transaction=False)
    for rid in flat[0::2]:
        pipe.hget(ctx.keys.request(rid.decode()), R.TENANT)
    return Counter(t.decode() for t in pipe.execute())


def test_a_small_tenant_goes_into_the_next_batch_while_a_100k_backlog_drains(pipeline_settings, redis_client):
    s = pipeline_settings.replace(s3_bucket=None, max_batch_requests=10_000)
    producer = Producer.from_settings(s)
    big = producer.submit_many(({"custom_id": f"a-{i}", "params": params(i)} for i in range(100_000)),
                               tenant="A", reply_to="redis-stream:fair-A")
    assert big.accepted == 100_000
    ctx = Context(s)
    first = aggregator.pack_once(ctx)  # A alone: a full batch of A's
    assert first is not None and first.outcome == "submitted" and first.requests == 10_000

    small = producer.submit_many(({"custom_id": f"b-{i}", "params": params(i)} for i in range(50)),
                                 tenant="B", reply_to="redis-stream:fair-B")
    assert small.accepted == 50 and by_tenant(redis_client, ctx.keys) == {"A": 90_000, "B": 50}
    nxt = aggregator.pack_once(ctx)  # the very next batch packed holds every one of B's
    assert nxt is not None and nxt.outcome == "submitted" and nxt.requests == 10_000
    members = [m.decode() for m in redis_client.lrange(ctx.keys.batch_members(nxt.batch_id), 0, -1)]
    b_ids = {request_id("B", f"b-{i}") for i in range(50)}
    assert b_ids <= set(members)
    assert by_tenant(redis_client, ctx.keys) == {"A": 80_050}  # 9,950 of A's beside B's 50

    # B's results come back while A's backlog still waits: poll and collect, no more packing
    deadline = time.monotonic() + 60
    handed: list[str] = []
    while redis_client.xlen("fair-B") < 50 and time.monotonic() < deadline:
        redis_client.delete(ctx.keys.poll_lock())
        poller.poll(ctx, handed.append)
        while handed:
            results.collect(ctx, handed.pop())
        time.sleep(0.1)
    assert redis_client.xlen("fair-B") == 50
    assert pending_count(redis_client, ctx.keys) == 80_050  # A's backlog is still waiting
    assert all(producer.status(f"b-{i}", tenant="B")["outcome"] == "succeeded" for i in range(50))


def test_backlogged_tenants_share_each_batch_by_weight(settings, redis_client):
    store = TenantStore(redis_client, Keys(settings.key_prefix))
    store.add(Tenant("heavy", weight=3))
    store.add(Tenant("light", weight=1))
    producer = Producer.from_settings(settings)
    for tenant in ("heavy", "light", "unregistered"):  # one not in the registry has weight 1
        producer.submit_many(({"custom_id": f"{tenant}-{i}", "params": params(i)} for i in range(6000)),
                             tenant=tenant)
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    _, _, flat = aggregator.claim(ctx, Take(5000, 10**9, "full"))
    got = tenants_of(ctx, flat)
    assert sum(got.values()) == 5000
    quantum = -(-5000 // (8 * 5))  # claim.lua: an eighth of the batch over the weights' sum, per round
    model = shares({"heavy": 6000, "light": 6000, "unregistered": 6000},
                   {"heavy": 3, "light": 1, "unregistered": 1}, 5000)  # the pure rule (batchline/fairshare.py)
    assert model == {"heavy": 3000, "light": 1000, "unregistered": 1000}
    assert all(abs(got[t] - model[t]) <= 3 * quantum for t in model)
    assert abs(got["light"] - 1000) <= quantum and abs(got["unregistered"] - 1000) <= quantum
    # the head of each tenant's list went first, in order (a FIFO per tenant)
    heavy = sorted(int(cid.split("-")[1]) for cid in _custom_ids(ctx, flat, "heavy"))
    assert heavy == list(range(len(heavy)))


def _custom_ids(ctx: Context, flat: list[bytes], tenant: str) -> list[str]:
    out = []
    for rid in flat[0::2]:
        t, cid = ctx.redis.hmget(ctx.keys.request(rid.decode()), R.TENANT, R.CUSTOM_ID)
        if t.decode() == tenant:
            out.append(cid.decode())
    return out


def test_a_small_tenant_is_filled_first_and_the_rest_goes_to_the_backlog(settings, redis_client):
    producer = Producer.from_settings(settings)
    producer.submit_many(({"custom_id": f"a-{i}", "params": params(i)} for i in range(3000)), tenant="A")
    producer.submit_many(({"custom_id": f"b-{i}", "params": params(i)} for i in range(40)), tenant="B")
    producer.submit_many(({"custom_id": f"c-{i}", "params": params(i)} for i in range(700)), tenant="C")
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    _, _, flat = aggregator.claim(ctx, Take(1500, 10**9, "full"))
    got = tenants_of(ctx, flat)
    model = shares({"A": 3000, "B": 40, "C": 700}, {"A": 1, "B": 1, "C": 1}, 1500)
    assert model == {"A": 760, "B": 40, "C": 700}  # B and C have less than a third: all of theirs
    assert got["B"] == 40 and sum(got.values()) == 1500
    assert abs(got["A"] - 760) <= 63 and abs(got["C"] - 700) <= 63  # one quantum: ceil(1500 / 24)


def test_a_batch_cut_by_bytes_is_shared_too(settings, redis_client):
    producer = Producer.from_settings(settings)
    for tenant in ("x", "y"):
        producer.submit_many(({"custom_id": f"{tenant}-{i}", "params": params(i)} for i in range(3000)),
                             tenant=tenant)
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    size = int(redis_client.hget(ctx.keys.request(request_id("x", "x-0")), R.SIZE))
    _, _, flat = aggregator.claim(ctx, Take(100_000, 400 * size, "full"))  # bytes bind long before the count
    got = tenants_of(ctx, flat)
    assert 380 <= sum(got.values()) <= 400
    assert abs(got["x"] - got["y"]) <= 60  # neither takes the whole byte budget first


def test_the_lead_tenant_rotates_so_a_tenant_of_another_beta_set_is_not_starved(settings, redis_client):
    producer = Producer.from_settings(settings)
    producer.submit_many(({"custom_id": f"p-{i}", "params": params(i)} for i in range(500)), tenant="plain")
    producer.submit_many(({"custom_id": f"b-{i}", "params": params(i), "betas": ["output-300k-2026-03-24"]}
                          for i in range(500)), tenant="beta")
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    seen = []
    for _ in range(2):
        _, _, flat = aggregator.claim(ctx, Take(100, 10**9, "full"))
        got = tenants_of(ctx, flat)
        assert len(got) == 1 and sum(got.values()) == 100  # one beta set per batch
        seen.append(next(iter(got)))
    assert sorted(seen) == ["beta", "plain"]
    assert by_tenant(redis_client, ctx.keys) == {"plain": 400, "beta": 400}  # the others kept, in place


def test_a_01_single_pending_list_is_moved_and_nothing_is_lost(pipeline_settings, redis_client):
    s = pipeline_settings.replace(s3_bucket=None)
    producer = Producer.from_settings(s)
    producer.submit_many(({"custom_id": f"old-{i}", "params": params(i)} for i in range(120)),
                         tenant="legacy", reply_to="redis-stream:fair-legacy")
    k = producer.keys
    # what 0.1 left behind: one list of every tenant's ids, no per-tenant lists, no count
    producer.cancel("old-0", tenant="legacy")  # canceled while queued: 0.1 left it in the list too
    ids = redis_client.lrange(k.pending_of("legacy"), 0, -1)
    redis_client.delete(k.pending_of("legacy"), k.pending_tenants)
    redis_client.hdel(k.stats, "pending")
    redis_client.rpush(k.legacy_pending, *ids)
    assert aggregator.queue_view(Context(s)).pending == 0  # nothing listed per tenant yet
    ctx = Context(s)
    assert aggregator.migrate_legacy_pending(ctx) == 119
    assert not redis_client.exists(k.legacy_pending) and pending_count(redis_client, k) == 119
    drain(ctx)
    assert redis_client.xlen("fair-legacy") == 120  # 119 answered, and old-0's one `canceled`
    assert pending_count(redis_client, k) == 0 and not redis_client.exists(k.pending_tenants)


def test_more_tenants_than_a_batch_holds_take_turns(settings, redis_client):
    producer = Producer.from_settings(settings)
    for t in range(30):  # three requests each: 30 tenants, batches of 10
        producer.submit_many(({"custom_id": f"r-{t}-{i}", "params": params(i)} for i in range(3)), tenant=f"t{t:02d}")
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    served: list[set[str]] = []
    for _ in range(3):
        _, _, flat = aggregator.claim(ctx, Take(10, 10**9, "full"))
        got = tenants_of(ctx, flat)
        assert sum(got.values()) == 10 and set(got.values()) == {1}
        served.append(set(got))
    # three claims of ten: every tenant served once, none twice (round robin over claims)
    assert set().union(*served) == {f"t{t:02d}" for t in range(30)}
