"""Beat sends a tick only when its work is due (workers/due.py): each check against a real Redis, with
a clock the test moves, and the checks agree with what the tasks then do."""

from __future__ import annotations

from batchline.clock import FakeClock
from batchline.producers.producer import Producer
from batchline.workers import aggregator, due, poller, sweeper
from batchline.workers.context import Context
from batchline.workers.task_summary import did_work


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": f"q {i}"}]}


def test_pack_is_due_only_when_the_packing_rule_says_so(settings):
    s = settings.replace(max_batch_requests=100, max_wait_seconds=5.0)
    clock = FakeClock()
    ctx = Context(s, clock=clock)
    assert due.pack_due(ctx) is None  # nothing pending
    Producer.from_settings(s).submit_many(({"custom_id": f"a-{i}", "params": params(i)} for i in range(10)),
                                          tenant="acme")
    assert due.pack_due(ctx) is None  # 10 of 100, and the oldest waited less than 5 s
    clock.advance(4.9)
    assert due.pack_due(ctx) is None
    clock.advance(0.2)
    seen = due.pack_due(ctx)
    assert seen == {"reason": "aged", "pending": 10, "in_flight": 0, "tenants": {"acme": 10}}
    Producer.from_settings(s).submit_many({"custom_id": f"b-{i}", "params": params(i)} for i in range(90))
    clock.advance(-10)  # young again: full by count is due at once
    assert due.pack_due(ctx)["reason"] == "full"


def test_pack_is_not_due_while_creates_back_off_or_paused_between_probes(settings):
    s = settings.replace(max_wait_seconds=0.0, pause_probe_seconds=60.0)
    clock = FakeClock()
    ctx = Context(s, clock=clock)
    Producer.from_settings(s).submit("x-1", params(1))
    assert due.pack_due(ctx) is not None
    ctx.redis.set(ctx.keys.create_backoff, "1", px=60_000)
    assert due.pack_due(ctx) is None
    ctx.redis.delete(ctx.keys.create_backoff)
    ctx.redis.hset(ctx.keys.paused, "probed_at", clock.now_ms())
    assert due.pack_due(ctx) is None
    clock.advance(60)
    assert due.pack_due(ctx) == {"reason": "probe"}


def test_pack_check_reads_only_the_queue_full_cap(settings):
    """The check leaves the lowered in-flight cap for the pack to lift (it only reads)."""
    ctx = Context(settings.replace(max_wait_seconds=0.0))
    ctx.redis.set(ctx.keys.in_flight_cap, 5)
    Producer.from_settings(ctx.settings).submit("y-1", params(1))
    assert due.pack_due(ctx) is not None
    assert ctx.redis.exists(ctx.keys.in_flight_cap)


def test_poll_is_due_only_with_open_batches(pipeline_settings):
    s = pipeline_settings.replace(max_wait_seconds=0.0)
    ctx = Context(s)
    assert due.poll_due(ctx) is None
    Producer.from_settings(s).submit_many({"custom_id": f"p-{i}", "params": params(i)} for i in range(5))
    created = aggregator.pack(ctx)
    assert [c.outcome for c in created] == ["submitted"]
    assert due.poll_due(ctx) == {"open": 1}
    ctx.redis.set(ctx.keys.poll_backoff, "rate_limit", px=60_000)
    assert due.poll_due(ctx) is None


def test_poll_is_not_due_while_a_round_holds_the_lock_and_the_poll_agrees(pipeline_settings):
    """A tick right after a round (worker late, beat on time) would be a poll that skips: not sent."""
    s = pipeline_settings.replace(max_wait_seconds=0.0, poll_interval_seconds=10.0)
    clock = FakeClock()
    ctx = Context(s, clock=clock)
    Producer.from_settings(s).submit("l-1", params(1))
    assert [c.outcome for c in aggregator.pack(ctx)] == ["submitted"]
    assert due.poll_due(ctx) == {"open": 1}
    assert poller.poll(ctx, lambda bid: None).api_calls  # a round: it holds the lock for 8 s
    clock.advance(7.9)
    assert due.poll_due(ctx) is None
    assert poller.poll(ctx, lambda bid: None).skipped  # what the task would have done
    clock.advance(0.2)
    assert due.poll_due(ctx) == {"open": 1}
    assert not poller.poll(ctx, lambda bid: None).skipped


def test_sweep_is_due_exactly_when_the_sweep_would_act(pipeline_settings):
    s = pipeline_settings.replace(max_wait_seconds=0.0, claim_lease_seconds=1.0)
    clock = FakeClock()
    ctx = Context(s, clock=clock)
    assert due.sweep_due(ctx) is None
    assert sweeper.sweep(ctx, lambda b: None).summary() == {}  # agrees: a sweep now does nothing
    Producer.from_settings(s).submit_many({"custom_id": f"s-{i}", "params": params(i)} for i in range(20))
    take = aggregator.next_batch(aggregator.queue_view(ctx), aggregator.limits(ctx))
    bid = aggregator.claim(ctx, take).batch_id
    assert due.sweep_due(ctx) is None  # the claim's lease holds
    clock.advance(1.1)
    assert due.sweep_due(ctx) == {"leases_expired": 1}
    report = sweeper.sweep(ctx, lambda b: None)
    assert report.released == [bid] and did_work("batchline.poller.sweep", report.summary())
    assert due.sweep_due(ctx) is None


def test_sweep_is_due_for_an_alert_to_raise_and_to_clear(settings):
    clock = FakeClock()
    ctx = Context(settings, clock=clock)
    ctx.redis.zadd(ctx.keys.undeliverable, {"r1": clock.now_ms()})
    assert due.sweep_due(ctx) == {"alerts_changed": True}
    assert sweeper.sweep(ctx, lambda b: None).summary() == {"alerts": 1}
    assert due.sweep_due(ctx) is None  # raised once; not due again while it stands unchanged
    ctx.redis.zrem(ctx.keys.undeliverable, "r1")
    assert due.sweep_due(ctx) == {"alerts_changed": True}
    assert sweeper.sweep(ctx, lambda b: None).summary() == {"alerts": 0}
    assert due.sweep_due(ctx) is None


def test_sweep_is_due_for_queued_cancels(settings):
    ctx = Context(settings)
    producer = Producer.from_settings(settings)
    producer.submit("c-1", params(1))
    producer.cancel("c-1")
    assert due.sweep_due(ctx) == {"canceled": 1}
    assert sweeper.sweep(ctx, lambda b: None).canceled == 1
    assert due.sweep_due(ctx) is None


def test_did_work_reads_flowers_result_repr():
    assert did_work("batchline.aggregator.pack", repr({"batches": ["blb_1"], "requests": 3, "outcomes": ["submitted"]}))
    assert not did_work("batchline.aggregator.pack", repr({"batches": [], "requests": 0, "outcomes": []}))
    assert not did_work("batchline.poller.poll", "{'open': 2, 'api_calls': 0, 'ended': [], 'skipped': 'x'}")
    assert did_work("batchline.poller.poll", "{'open': 2, 'api_calls': 1, 'ended': []}")
    assert not did_work("batchline.poller.sweep", "{}")
    assert not did_work("batchline.results.collect", "None")


def test_beat_sends_one_outbox_tick_until_it_has_claimed(pipeline_settings):
    """A tick not yet started (workers busy) would leave a second one nothing to claim: beat marks a
    tick on its way as it sends it (the real scheduler, over the real broker), the tick's first claim
    clears the mark, and an unstarted tick's mark expires with it."""
    import base64
    import json

    from celery.beat import ScheduleEntry

    from batchline.workers import delivery
    from batchline.workers.app import OUTBOX, QUEUES, create_app
    from batchline.workers.beat_scheduler import DueScheduler

    app = create_app(pipeline_settings)
    ctx = Context(pipeline_settings)
    k, queue = ctx.keys, QUEUES["delivery"]
    scheduler = DueScheduler(app, lazy=True)
    entry = ScheduleEntry(name="outbox", task=OUTBOX, schedule=60.0, options={"expires": 2.0}, app=app)
    ctx.redis.zadd(k.outbox, {"r-1": ctx.clock.now_ms()})  # a send due (its record gone: settled 'gone')
    scheduler.apply_entry(entry)
    assert ctx.redis.llen(queue) == 1 and 0 < ctx.redis.pttl(k.outbox_tick) <= 2000
    sent = json.loads(base64.b64decode(json.loads(ctx.redis.lindex(queue, 0))["body"]))
    assert sent[1] == {"due": 1}  # what the check saw, as the tick's kwargs
    assert due.outbox_due(ctx) is None
    scheduler.apply_entry(entry)  # the first has not claimed: no second tick
    assert ctx.redis.llen(queue) == 1
    assert delivery.run_rounds(ctx, 5.0).claimed == 1  # the tick runs: its claim clears the mark
    assert not ctx.redis.exists(k.outbox_tick) and due.outbox_due(ctx) is None  # nothing due now
    ctx.redis.zadd(k.outbox, {"r-2": ctx.clock.now_ms()})
    scheduler.apply_entry(entry)
    assert ctx.redis.llen(queue) == 2
    ctx.redis.delete(k.outbox_tick)  # as the mark expires with an unstarted tick
    assert due.outbox_due(ctx) == {"due": 1}
    app.close()
