"""Provider faults and bad outcomes, through the plain functions against real parts (no Celery)."""

from __future__ import annotations

import pytest

from batchline.clock import FakeClock
from batchline.errors import RetryableError
from batchline.fields import B
from batchline.leases import HANDOFF
from batchline.pending import count as pending_count
from batchline.producers.producer import Producer
from batchline.workers import aggregator, sweeper
from batchline.workers.context import Context
from tests.integration.pipeline import drain, entries


def params(i: int, marker: str = "") -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 32,
            "messages": [{"role": "user", "content": f"item {i} {marker}".strip()}]}


@pytest.fixture
def fast(pipeline_settings):
    return pipeline_settings.replace(s3_bucket=None, pause_probe_seconds=0.2, sweep_interval_seconds=0.5)


def test_redrive_by_error_class_delivers_final_outcome_once(fast, redis_client, emulator):
    s = fast.replace(max_attempts=3)
    producer = Producer.from_settings(s)
    items = [{"custom_id": f"ok-{i}", "params": params(i)} for i in range(20)]
    items += [{"custom_id": f"bad-{i}", "params": params(i, "[[emulator:error=invalid_request_error]]")}
              for i in range(5)]
    items += [{"custom_id": f"busy-{i}", "params": params(i, "[[emulator:error=overloaded_error]]")}
              for i in range(5)]
    assert producer.submit_many(items, reply_to="redis-stream:out").accepted == 30
    drain(Context(s))
    got = entries(redis_client, "out")
    assert len(got) == 30
    assert {got[f"ok-{i}"]["outcome"] for i in range(20)} == {"succeeded"}
    for i in range(5):
        bad = producer.status(f"bad-{i}")
        assert got[f"bad-{i}"]["outcome"] == "errored" and bad["attempts"] == 1
        assert bad["error_type"] == "invalid_request_error"
        busy = producer.status(f"busy-{i}")
        assert got[f"busy-{i}"]["outcome"] == "errored" and busy["attempts"] == 3
        assert [h["error_type"] for h in busy["history"]] == ["overloaded_error"] * 3
        assert len({h["batch_id"] for h in busy["history"]}) == 3
    books = emulator.books()
    assert books["requests_created"] == 30 + 2 * 5  # only the transient ones went again
    assert books["requests_in_multiple_batches"] == 5


def test_expired_requests_are_resubmitted_and_finished_ones_kept(fast, redis_client, emulator):
    emulator.set_faults(clock_speed=20_000.0, processing_seconds=600.0)
    s = fast.replace(max_attempts=2)
    producer = Producer.from_settings(s)
    items = [{"custom_id": f"ok-{i}", "params": params(i)} for i in range(10)]
    items += [{"custom_id": "late", "params": params(0, "[[emulator:expire]]")}]
    producer.submit_many(items, reply_to="redis-stream:exp")
    drain(Context(s), timeout=40)
    got = entries(redis_client, "exp")
    assert {got[f"ok-{i}"]["outcome"] for i in range(10)} == {"succeeded"}
    assert got["late"]["outcome"] == "expired"
    assert [h["result"] for h in producer.status("late")["history"]] == ["expired", "expired"]
    assert emulator.books()["requests_in_multiple_batches"] == 1  # only the expired one went again


def test_413_splits_the_batch_until_it_fits(fast, redis_client, emulator):
    emulator.set_faults(max_body_bytes=40_000)
    s = fast
    producer = Producer.from_settings(s)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i, "x" * 300)} for i in range(200)),
                         reply_to="redis-stream:split")
    drain(Context(s))
    assert len(entries(redis_client, "split")) == 200
    books = emulator.books()
    assert books["batches_created"] >= 2 and books["requests_created"] == 200
    assert books["requests_in_multiple_batches"] == 0


@pytest.mark.parametrize("bad", [0, 17, 39], ids=["at the head", "in the middle", "at the tail"])
def test_400_at_create_fails_only_the_offending_request(fast, redis_client, emulator, bad):
    s = fast
    producer = Producer.from_settings(s)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(40)), reply_to="redis-stream:bis")
    # A record whose params the API refuses synchronously (not an object): as if written by a buggy older version.
    from batchline.keys import request_id

    ctx = Context(s)
    ctx.redis.hset(ctx.keys.request(request_id("default", f"r-{bad}")), "p", '"not an object"')
    drain(ctx)
    got = entries(redis_client, "bis")
    assert len(got) == 40
    assert got[f"r-{bad}"]["outcome"] == "errored"
    assert producer.status(f"r-{bad}")["error_type"] == "invalid_request_error"
    assert {v["outcome"] for k, v in got.items() if k != f"r-{bad}"} == {"succeeded"}
    assert not redis_client.exists(ctx.keys.paused)  # one bad request never pauses the account
    assert emulator.books()["requests_in_multiple_batches"] == 0


@pytest.mark.parametrize("stage", ["claimed", "creating"])
def test_a_cancel_during_claim_or_create_is_delivered_once_when_released(fast, redis_client, emulator, stage):
    """Canceled while its batch is claimed (or its create in flight), then the batch is released:
    exactly one `canceled` delivery, with the record's TTL and the delivered counter."""
    from batchline.workers.packing import Take

    producer = Producer.from_settings(fast)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(6)), reply_to="redis-stream:cc")
    ctx = Context(fast)
    k = ctx.keys
    bid, owner, _ = aggregator.claim(ctx, Take(6, fast.max_batch_bytes, "full"))
    if stage == "creating":
        now = ctx.clock.now_ms()
        assert ctx.scripts.intent(bid, owner, now, now + 60_000)
    assert producer.cancel("r-2") == "requested" and producer.cancel("r-4") == "requested"
    assert aggregator.release(ctx, bid, "test_release", owner) == 4
    got = entries(redis_client, "cc")
    assert set(got) == {"r-2", "r-4"} and {v["outcome"] for v in got.values()} == {"canceled"}
    for cid in ("r-2", "r-4"):
        status = producer.status(cid)
        assert status["state"] == "delivered" and status["outcome"] == "canceled"
        assert 0 < redis_client.ttl(k.request(producer_rid(cid))) <= fast.record_ttl_seconds
    assert int(redis_client.hget(k.counters, "delivered:default:canceled")) == 2
    drain(ctx)
    got = entries(redis_client, "cc")  # asserts nothing is delivered twice
    assert len(got) == 6 and [got[c]["outcome"] for c in ("r-0", "r-1", "r-3", "r-5")] == ["succeeded"] * 4
    assert emulator.books()["requests_created"] == 4


def producer_rid(custom_id: str) -> str:
    from batchline.keys import request_id

    return request_id("default", custom_id)


def test_spend_cap_pauses_submission_and_a_probe_resumes_it(fast, redis_client, emulator):
    s = fast
    producer = Producer.from_settings(s)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(30)), reply_to="redis-stream:cap")
    clock = FakeClock()
    ctx = Context(s, clock=clock)
    emulator.set_faults(spend_limit_reached=True)
    created = aggregator.pack(ctx)
    assert [c.outcome for c in created] == ["released"]
    assert redis_client.hget(ctx.keys.paused, "reason") == b"rate_limit_error"
    calls_before = emulator.books()["operations"]
    for _ in range(5):
        assert aggregator.pack(ctx) == []  # paused: nothing claimed, the queue is not burnt through
    assert pending_count(redis_client, ctx.keys) == 30
    assert producer.status("r-3")["state"] == "queued"
    assert sum(emulator.books()["operations"].values()) - sum(calls_before.values()) <= 2  # probes only
    emulator.set_faults(spend_limit_reached=False)
    clock.advance(0.3)  # past the probe interval
    drain(ctx)
    assert not redis_client.exists(ctx.keys.paused)
    assert len(entries(redis_client, "cap")) == 30


def test_429_on_create_backs_off_for_retry_after(fast, redis_client, emulator):
    s = fast
    Producer.from_settings(s).submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(10)),
                                          reply_to="redis-stream:slow")
    emulator.set_faults(http_429_rate=1.0, retry_after_seconds=7, fault_operations=("create",))
    ctx = Context(s)
    assert [c.outcome for c in aggregator.pack(ctx)] == ["released"]
    ttl = redis_client.pttl(ctx.keys.create_backoff)
    assert 5_000 < ttl <= 7_000
    assert aggregator.pack(ctx) == []
    assert emulator.books()["batches_created"] == 0
    emulator.set_faults(http_429_rate=0.0)
    redis_client.delete(ctx.keys.create_backoff)
    drain(ctx)
    assert len(entries(redis_client, "slow")) == 10


def test_cancel_pending_and_whole_batch(fast, redis_client, emulator):
    emulator.set_faults(processing_seconds=30.0)
    s = fast
    producer = Producer.from_settings(s)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(20)), reply_to="redis-stream:cx")
    assert producer.cancel("r-0") == "removed"
    assert producer.status("r-0")["state"] == "canceling"  # in the cancel batch, until a sweep delivers it
    ctx = Context(s)
    created = aggregator.pack(ctx)
    assert created[0].requests == 19
    counts = producer.cancel_batch(created[0].provider_id)
    assert counts == {"requested": 19}
    assert producer.cancel("r-0") == "requested"  # asked again: still one delivery
    drain(ctx, timeout=20)
    got = entries(redis_client, "cx")  # fails on any outcome delivered twice
    assert len(got) == 20 and {v["outcome"] for v in got.values()} == {"canceled"}
    assert producer.cancel("r-0") == "final" and producer.status("r-0")["outcome"] == "canceled"
    assert 0 < redis_client.ttl(ctx.keys.request(producer_rid("r-0"))) <= s.record_ttl_seconds
    assert int(redis_client.hget(ctx.keys.counters, "delivered:default:canceled")) == 20
    assert emulator.books()["operations"].get("cancel") == 1
    assert emulator.books()["requests_created"] == 19  # the one canceled while queued never went out


def test_400_for_every_create_pauses_instead_of_failing_requests(fast, redis_client, emulator):
    s = fast
    producer = Producer.from_settings(s)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(8)), reply_to="redis-stream:all400")
    emulator.set_faults(http_400_rate=1.0, fault_operations=("create",))  # every create: 400, whatever it holds
    clock = FakeClock()
    ctx = Context(s, clock=clock)
    for _ in range(10):
        aggregator.pack(ctx)
        if redis_client.exists(ctx.keys.paused):
            break
    assert redis_client.hget(ctx.keys.paused, "reason") == b"create_rejected"
    assert redis_client.xlen("all400") == 0  # nobody was failed for a fault not theirs
    assert {producer.status(f"r-{i}")["state"] for i in range(8)} == {"queued"}
    emulator.set_faults(http_400_rate=0.0)
    redis_client.delete(ctx.keys.limit_override)
    clock.advance(0.3)  # past the probe interval
    drain(ctx)
    assert len(entries(redis_client, "all400")) == 8


def test_reconcile_adopts_only_the_batch_that_proves_to_be_ours(fast, redis_client, emulator):
    """Two creates of the same size died before saving; only one reached the provider. The sweeper
    must adopt it for the right intent (by its result ids), release the other, and pay once."""
    import anthropic
    from anthropic.types.messages import MessageBatch

    from batchline.workers.packing import Take

    s = fast.replace(claim_lease_seconds=1.0, create_timeout_seconds=1.0)
    producer = Producer.from_settings(s)
    producer.submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(20)), reply_to="redis-stream:rc")
    clock = FakeClock()
    ctx = Context(s, clock=clock)
    k = ctx.keys
    take = Take(10, s.max_batch_bytes, "full")
    claims = aggregator.claim(ctx, take), aggregator.claim(ctx, take)
    (b_a, _, _), (b_b, _, flat_b) = claims
    now = clock.now_ms()
    for bid, owner, _ in claims:
        assert ctx.scripts.intent(bid, owner, now, now + 1000)
    client = anthropic.Anthropic(base_url=s.anthropic_base_url, api_key="x", max_retries=0)
    created = client.post("/v1/messages/batches", cast_to=MessageBatch, content=aggregator.build_body(flat_b),
                          options={"headers": {"Content-Type": "application/json"}})
    clock.advance(1.2)  # the leases run out ...
    emulator.advance(1.2)  # ... and the created batch ends meanwhile
    report = sweeper.sweep(ctx, lambda b: None)
    assert report.adopted == [b_b] and report.released == []
    assert redis_client.hget(k.batch(b_b), "provider_id").decode() == created.id
    assert redis_client.hget(k.batch(b_a), "state") == b"creating"  # not adopted by the wrong intent
    clock.advance(1.5)  # the create window of A passes with nothing else created
    assert sweeper.sweep(ctx, lambda b: None).released == [b_a]
    drain(ctx)
    got = entries(redis_client, "rc")
    assert len(got) == 20
    books = emulator.books()
    assert books["batches_created"] == 2 and books["requests_in_multiple_batches"] == 0


def test_a_short_results_file_is_retried_after_retry_after_by_whoever_takes_the_hand_off(fast, redis_client, emulator):
    from batchline.errors import RetryableError
    from batchline.fields import B
    from batchline.leases import HANDOFF
    from batchline.workers import poller, results

    s = fast
    Producer.from_settings(s).submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(20)),
                                          reply_to="redis-stream:cut")
    ctx = Context(s)
    bid = aggregator.pack(ctx)[0].batch_id
    emulator.advance(5)
    assert poller.poll(ctx, lambda b: None).ended == [bid]
    ctx.redis.hset(ctx.keys.batch(bid), B.N, 25)  # the file ends cleanly after 20 of 25 lines: a short read
    for _ in range(results.MAX_SHORT_READS - 1):
        with pytest.raises(RetryableError) as short:
            results.collect(ctx, bid)
        assert short.value.retry_after == results.SHORT_READ_RETRY_SECONDS
        # the collect lease went back to a hand-off: the task's retry takes it over, a sweep waits
        assert redis_client.hget(ctx.keys.batch(bid), B.LEASE_OWNER).decode().startswith(HANDOFF)
        assert sweeper.sweep(ctx, lambda b: None).handed_off == []
    last = results.collect(ctx, bid)  # the last try settles what it has
    assert last.status == "done" and last.skipped == 20
    assert redis_client.hget(ctx.keys.batch(bid), B.STATE) == b"delivered"
    assert len(entries(redis_client, "cut")) == 20


def test_a_cut_results_stream_is_handed_back_for_a_prompt_retry(fast, redis_client, emulator):
    from batchline.workers import poller, results

    Producer.from_settings(fast).submit_many(({"custom_id": f"r-{i}", "params": params(i)} for i in range(20)),
                                             reply_to="redis-stream:drop")
    ctx = Context(fast)
    bid = aggregator.pack(ctx)[0].batch_id
    emulator.advance(5)
    handed: list[str] = []
    assert poller.poll(ctx, handed.append).ended == [bid]
    assert sweeper.sweep(ctx, handed.append).handed_off == []  # the poller's hand-off is fresh
    emulator.set_faults(results_cut_after=7)  # the connection drops mid-file
    with pytest.raises(RetryableError):  # transient: the collect task retries it with backoff
        results.collect(ctx, bid)
    # the collect lease went back to a hand-off: the task's retry takes it over at once
    assert redis_client.hget(ctx.keys.batch(bid), B.LEASE_OWNER).decode().startswith(HANDOFF)
    emulator.set_faults(results_cut_after=None)
    assert results.collect(ctx, bid).status == "done"
    assert len(entries(redis_client, "drop")) == 20


def test_the_collect_task_retries_with_the_errors_retry_after(fast, monkeypatch):
    from celery.exceptions import Retry

    from batchline.errors import RetryableError
    from batchline.workers import results
    from batchline.workers.app import COLLECT, create_app

    task = create_app(fast).tasks[COLLECT]

    def cut(*args):
        raise RetryableError("cut short", retry_after=7.0)

    asked = {}

    def retry(**kwargs):
        asked.update(kwargs)
        return Retry()

    monkeypatch.setattr(results, "collect", cut)
    monkeypatch.setattr(task, "retry", retry)
    with pytest.raises(Retry):
        task("blb_1")
    assert asked["countdown"] == 7.0
