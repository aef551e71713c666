"""Fair share and quotas at their edges, each found by an adversarial review (real Redis): bounded
claims over canceled entries, large requests beside small ones, a lone refused request, counts
through a rolling upgrade from 0.1, newcomers beside many backlogs, chunks of several tenants."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from batchline.fields import R
from batchline.keys import request_id
from batchline.producers.producer import Producer
from batchline.workers import aggregator
from batchline.workers.context import Context
from batchline.workers.packing import Take
from tests.integration.test_fair_share import tenants_of


def params(i: int, pad: str = "") -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": f"q{i}{pad}"}]}


def test_one_claim_does_bounded_work_over_requests_canceled_while_queued(settings, redis_client):
    """0.1's claim looked at most max_requests list entries per call (LRANGE 0..max_n-1). The fair
    share claim walks a tenant's list window after window while every entry in it is canceled (no
    LREM at cancel: 'claim drops them as it passes'), so one claim can walk a list of any length in
    one Lua call: Redis is blocked for all of it. A tenant gets such a list by submit + cancel, over
    and over (a cancel frees its quota)."""
    producer = Producer.from_settings(settings)
    n = 60_000
    producer.submit_many(({"custom_id": f"c-{i}", "params": params(i)} for i in range(n)), tenant="churn")
    rids = [request_id("churn", f"c-{i}") for i in range(n)]
    for j in range(0, n, 5000):
        producer.cancel_ids(rids[j:j + 5000])
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    key = ctx.keys.pending_of("churn")
    assert redis_client.llen(key) == n
    t0 = time.perf_counter()
    _, _, flat = aggregator.claim(ctx, Take(10, 10**9, "full"))
    elapsed = time.perf_counter() - t0
    assert flat == []
    examined = n - redis_client.llen(key)
    # bounded by the batch's size (a small multiple of it, or a fixed cap), not by the list's length
    assert examined <= 20_000, f"one claim of max 10 requests examined {examined} entries in {elapsed:.2f}s"


def test_a_tenant_of_large_requests_does_not_end_every_batch_for_the_others(settings, redis_client):
    """The byte budget is shared: as soon as one tenant's next request does not fit, claim.lua ends
    the whole batch (`full = true`), although other tenants' small requests would still fit. A
    tenant sending large requests thus cuts every batch to a few requests of everybody else's."""
    s = settings.replace(max_batch_bytes=100_000)
    producer = Producer.from_settings(s)
    big = "x" * 30_000
    producer.submit_many(({"custom_id": f"a-{i}", "params": params(i, big)} for i in range(50)), tenant="hog")
    producer.submit_many(({"custom_id": f"b-{i}", "params": params(i)} for i in range(2000)), tenant="small")
    ctx = Context(s.replace(anthropic_api_key="unused"))
    got: Counter[str] = Counter()
    for _ in range(2):  # both lead tenants
        _, _, flat = aggregator.claim(ctx, Take(10_000, 100_000, "full"))
        got += tenants_of(ctx, flat)
    # each batch has ~90 KB of hog's and ~10 KB of room: ~60 small requests of ~150 bytes
    assert got["small"] >= 100, f"two batches of 100 KB held only {got['small']} small requests: {got}"


def test_a_lone_refused_request_sent_to_the_tail_lets_other_tenants_go_first(pipeline_settings, redis_client,
                                                                              emulator):
    """A 400 bisection narrows batches to one request; a request refused alone (before any narrowed
    create went through) is released 'tail', "behind the others, which are tried first". With one
    list per tenant, the tail is its own tenant's tail: a tenant whose only request is that one is
    at once the oldest head again, and a claim of one request weighs only the oldest tenant
    (ZRANGE 0..max_n-1), so the same request is created, refused and released in a loop while the
    good tenant's requests (which would prove the refusal is that request's) are never tried."""
    s = pipeline_settings.replace(s3_bucket=None, pause_probe_seconds=0.2, sweep_interval_seconds=0.5)
    producer = Producer.from_settings(s)
    producer.submit("bad", params(0), tenant="p", reply_to="redis-stream:lone")  # oldest head
    time.sleep(0.01)
    producer.submit_many(({"custom_id": f"g-{i}", "params": params(i)} for i in range(40)), tenant="g",
                         reply_to="redis-stream:lone")
    ctx = Context(s)
    ctx.redis.hset(ctx.keys.request(request_id("p", "bad")), "p", '"not an object"')  # refused at create
    for _ in range(40):  # each refused create ends a pack(); 40 creates are plenty to bisect 41
        aggregator.pack(ctx, budget_seconds=2.0)
        if producer.status("bad", tenant="p")["state"] != "queued":
            break
    creates = emulator.books()["operations"]["create"]
    status = producer.status("bad", tenant="p")
    good_sent = sum(producer.status(f"g-{i}", tenant="g")["state"] != "queued" for i in range(40))
    assert status["state"] != "queued" or redis_client.exists(ctx.keys.paused), (
        f"after {creates} creates the bad request is still queued, and {good_sent} of the 40 good ones "
        f"went out; override: {redis_client.hgetall(ctx.keys.limit_override)}")
    assert status.get("error_type") == "invalid_request_error" and not redis_client.exists(ctx.keys.paused)


def test_a_request_in_the_01_list_canceled_before_it_is_moved_leaves_the_pending_count_right(settings,
                                                                                             redis_client):
    """Rolling upgrade (docs/operating.md, runbook: 'also while a 0.1 producer still writes'): a request a 0.1 producer
    put in `{prefix}:pending` is not in the count yet (0.1 kept none; migrate adds what it moves).
    The new version's cancel of it before the next pass must not count it out (cancel.lua looks in
    the old list while it has entries), or the count would end one low for good."""
    producer = Producer.from_settings(settings)
    k = producer.keys
    producer.submit("old", params(0), tenant="legacy")
    # as a 0.1 producer would have left it: in the one list, not counted, no per-tenant list
    redis_client.delete(k.pending_of("legacy"), k.pending_tenants)
    redis_client.hincrby(k.stats, "pending", -1)
    redis_client.rpush(k.legacy_pending, request_id("legacy", "old"))
    assert producer.cancel("old", tenant="legacy") == "removed"  # the new version's cancel
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    aggregator.migrate_legacy_pending(ctx)
    producer.submit_many(({"custom_id": f"n-{i}", "params": params(i)} for i in range(5)), tenant="legacy")
    assert int(redis_client.hget(k.stats, "pending")) == 5  # five queued


def test_a_newcomer_is_not_starved_when_more_tenants_are_backlogged_than_a_batch_weighs(settings, redis_client):
    """With as many backlogged tenants as a batch holds requests, a tenant whose backlog was all
    submitted before a newcomer's request keeps an older head than the newcomer until that backlog is
    gone; if claims weighed only the longest-waiting max_n tenants, the newcomer would wait behind all
    of it (one FIFO again). The lead tenant advances by the tenants served, so all take turns."""
    producer = Producer.from_settings(settings)
    for t in range(10):
        producer.submit_many(({"custom_id": f"a-{i}", "params": params(i)} for i in range(200)), tenant=f"old{t}")
    time.sleep(0.01)
    producer.submit("late", params(0), tenant="newcomer")
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    seen: Counter[str] = Counter()
    for _ in range(20):  # 20 batches of 10: each of the 11 tenants could have been in most of them
        _, _, flat = aggregator.claim(ctx, Take(10, 10**9, "full"))
        seen += tenants_of(ctx, flat)
    assert seen["newcomer"] == 1, f"20 batches, none with the newcomer's one request: {dict(seen)}"


def test_a_chunk_of_two_tenants_one_over_its_budget_is_refused_cleanly(settings, redis_client):
    """Items may name their own tenant, so one chunk holds several. intake.lua refuses every new
    request of the chunk from the first refusal on with that refusal's code; the producer then maps
    budget refusals to its message by the *item's* tenant (`over_budget[r.tenant]`): a request of
    another tenant behind the over-budget one raises KeyError instead of QuotaExceeded."""
    from batchline.keys import Keys
    from batchline.quotas import QuotaExceeded
    from batchline.tenants import Tenant, TenantStore

    keys = Keys(settings.key_prefix)
    TenantStore(redis_client, keys).add(Tenant("spender", monthly_budget_usd=1.0))
    day = time.strftime("%Y-%m-%d", time.gmtime())
    redis_client.hset(keys.cost_day(day), "spender|claude-haiku-4-5|batch", 1_500_000)  # $1.50 this month
    redis_client.sadd(keys.cost_days, day)
    producer = Producer.from_settings(settings)
    items = [{"custom_id": "s-0", "params": params(0), "tenant": "spender"},
             {"custom_id": "o-0", "params": params(1), "tenant": "other"}]
    with pytest.raises(QuotaExceeded, match="monthly_budget_usd") as info:
        producer.submit_many(items)
    assert info.value.tenant == "spender" and info.value.index == 0


def test_a_01_cancel_of_a_moved_request_leaves_no_count_behind_once_drained(settings, redis_client):
    """The other way round: a 0.1 producer's cancel of a request a new worker already moved lowers
    pending_bytes but not the count (0.1 kept none). The count heals once nothing is pending: a claim
    that finds no tenant with work sets it to 0."""
    producer = Producer.from_settings(settings)
    k = producer.keys
    producer.submit_many(({"custom_id": f"m-{i}", "params": params(i)} for i in range(3)), tenant="legacy")
    rid = request_id("legacy", "m-1")
    size = int(redis_client.hget(k.request(rid), R.SIZE))
    # what 0.1's cancel.lua did to a queued request: batched into the cancel batch, bytes let go
    redis_client.hset(k.request(rid), mapping={R.STATE: "batched", R.BATCH: "canceled", R.CANCEL: "1", R.SIZE: 0})
    redis_client.hincrby(k.stats, "pending_bytes", -size)
    assert int(redis_client.hget(k.stats, "pending")) == 3  # one too many: two are queued
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    _, _, flat = aggregator.claim(ctx, Take(10, 10**9, "full"))
    assert len(flat) == 4  # the two queued ones
    assert int(redis_client.hget(k.stats, "pending")) == 1  # not yet healed: a claim found work
    _, _, flat = aggregator.claim(ctx, Take(10, 10**9, "full"))
    assert flat == [] and int(redis_client.hget(k.stats, "pending")) == 0
    assert int(redis_client.hget(k.stats, "pending_bytes")) == 0
