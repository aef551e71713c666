"""Reply targets can't collide with the broker or with each other, and one target's failure is that
request's alone: the rest of the chunk settles, the request is `undeliverable`, and `redeliver`
sends it once the target is fixed. Real Redis, emulator over HTTP, the real Celery broker."""

from __future__ import annotations

import json
import uuid

import pytest

from batchline.errors import InvalidRequest
from batchline.metrics import PipelineCollector
from batchline.producers.producer import Producer
from batchline.requests import ReplyTarget
from batchline.workers import sweeper
from batchline.workers.app import celery_sender, create_app
from batchline.workers.context import Context
from batchline.workers.targets import MAX_CELERY_SENDS, redeliver, send_all, undeliverable_ids
from tests.integration.pipeline import drain, entries


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"n{i}"}]}


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def refused(producer: Producer, reply_to: str, tenant: str = "t") -> str:
    r = producer.redis
    before = r.dbsize()
    with pytest.raises(InvalidRequest) as exc:
        producer.submit(unique("x"), params(0), tenant=tenant, reply_to=reply_to)
    assert exc.value.field == "reply_to"
    assert r.dbsize() == before, "something of a refused request was stored"
    return exc.value.rule


@pytest.mark.parametrize("reply_to", [
    "redis-stream:celery", "redis-stream:celery.pidbox", "redis-stream:celeryev", "redis-stream:reply.celery.pidbox",
    "redis-stream:results@host.dq2", "redis-stream:node1.dq2", "redis-stream:unacked", "redis-stream:unacked_index",
    "redis-stream:unacked_mutex", "redis-stream:_kombu.binding.celery", "redis-stream:batchline.results",
    "celery:app.task@unacked", "celery:app.task@_kombu.binding.x", "celery:app.task@batchline.poller",
])
def test_broker_keys_are_refused_at_intake(settings, reply_to):
    assert refused(Producer.from_settings(settings), reply_to)


def test_own_keys_are_refused_at_intake(settings):
    producer = Producer.from_settings(settings)
    assert "batchline's own" in refused(producer, f"redis-stream:{settings.key_prefix}:pending")
    assert refused(producer, f"celery:x@{settings.key_prefix}:pending")  # no ":" in a queue name


def test_a_name_is_a_stream_or_a_queue_never_both(settings, redis_client):
    producer = Producer.from_settings(settings)
    stream, queue = unique("shared-stream"), unique("shared-queue")
    assert producer.submit("a-1", params(1), tenant="alpha", reply_to=f"redis-stream:{stream}") == "accepted"
    assert producer.submit("b-1", params(1), tenant="beta", reply_to=f"celery:beta.handle@{queue}") == "accepted"
    assert "is a reply stream" in refused(producer, f"celery:beta.handle@{stream}", tenant="beta")
    assert "is a Celery queue" in refused(producer, f"redis-stream:{queue}", tenant="alpha")
    # a queue some Celery worker declared (kombu binds it) is a queue even while empty
    bound = unique("declared")
    redis_client.sadd(f"_kombu.binding.{bound}", f"{bound}\x06\x16\x06\x16{bound}")
    assert "is a Celery queue" in refused(producer, f"redis-stream:{bound}")
    # and a key of another type is neither
    other = unique("a-string")
    redis_client.set(other, "x")
    assert "holds a string" in refused(producer, f"redis-stream:{other}")
    assert "holds a string" in refused(producer, f"celery:x.y@{other}")
    # the same request in a chunk of many: only the refused ones are reported, the rest stored
    report = producer.submit_many(
        [{"custom_id": f"m-{i}", "params": params(i), "reply_to": f"redis-stream:{queue}" if i % 2 else None}
         for i in range(10)], tenant="gamma")
    assert report.accepted == 5 and [(r.index, r.field) for r in report.rejected] == [(i, "reply_to") for i in
                                                                                     range(1, 10, 2)]
    assert producer.status("m-1", tenant="gamma") is None


def test_reply_stream_prefix_setting(settings):
    producer = Producer.from_settings(settings.replace(reply_stream_prefix="replies."))
    assert "must start with 'replies.'" in refused(producer, "redis-stream:elsewhere")
    assert producer.submit("p-1", params(1), reply_to=f"redis-stream:{unique('replies.svc')}") == "accepted"
    assert producer.submit("p-2", params(2), reply_to="celery:svc.handle@svcq") == "accepted"  # streams only


def test_one_bad_target_is_that_request_alone_then_redeliver(pipeline_settings, redis_client):
    s = pipeline_settings.replace(s3_bucket=None)
    producer = Producer.from_settings(s)
    good, bad, bad_queue, boom_queue = unique("good"), unique("bad"), unique("badq"), unique("boomq")
    producer.submit_many(({"custom_id": f"g-{i}", "params": params(i)} for i in range(30)), tenant="good",
                         reply_to=f"redis-stream:{good}")
    producer.submit_many(({"custom_id": f"s-{i}", "params": params(i)} for i in range(3)), tenant="bad",
                         reply_to=f"redis-stream:{bad}")
    producer.submit_many(({"custom_id": f"c-{i}", "params": params(i)} for i in range(3)), tenant="bad",
                         reply_to=f"celery:bad.handle@{bad_queue}")
    producer.submit_many(({"custom_id": f"b-{i}", "params": params(i)} for i in range(2)), tenant="bad",
                         reply_to=f"celery:boom.handle@{boom_queue}")
    # after intake the targets' keys change kind (what intake can't see): a list where the stream
    # goes, a stream where the Celery queue is; and one broker refuses the send outright
    redis_client.rpush(bad, "not-a-stream")
    redis_client.xadd(bad_queue, {"k": "v"})
    app = create_app(s)
    real_send = celery_sender(app)
    broken = {"on": True}

    def send(task: str, queue: str | None, payload: dict) -> None:
        if queue == boom_queue and broken["on"]:
            raise ConnectionError("broker refused")
        real_send(task, queue, payload)

    ctx = Context(s, app)
    drain(ctx, celery_send=send)
    assert sorted(entries(redis_client, good)) == sorted(f"g-{i}" for i in range(30))  # the chunk settled
    for cid, why in [("s-0", "holds a list, not a stream"), ("c-1", "holds a stream, not a Celery queue"),
                     ("b-1", "ConnectionError: broker refused")]:
        status = producer.status(cid, tenant="bad")
        assert status["state"] == "undeliverable" and status["outcome"] == "succeeded", status
        assert why in status["delivery_error"]
    assert redis_client.llen(bad) == 1 and redis_client.xlen(bad_queue) == 1  # nothing written into them
    assert len(undeliverable_ids(ctx)) == 8 and len(undeliverable_ids(ctx, tenant="good")) == 0
    alerts = sweeper.watchdogs(ctx, int(__import__("time").time() * 1000))
    assert "8 requests" in alerts["undeliverable"]
    families = {f.name: f for f in PipelineCollector(ctx.redis, ctx.keys, 1).collect()}
    assert families["batchline_requests_undeliverable"].samples[0].value == 8
    assert [(x.labels["tenant"], x.value) for x in families["batchline_results_undeliverable"].samples
            if x.name.endswith("_total")] == [("bad", 8)]

    # still broken: nothing delivered, each reports why
    assert len(redeliver(ctx, send, undeliverable_ids(ctx, tenant="bad")).failed) == 8
    # fixed: each is sent once, the stream gets the outcome under exactly its name
    redis_client.delete(bad, bad_queue)
    broken["on"] = False
    report = redeliver(ctx, send, undeliverable_ids(ctx, tenant="bad"))
    assert (report.delivered, report.failed) == (8, {})
    assert sorted(entries(redis_client, bad)) == ["s-0", "s-1", "s-2"]
    assert json.loads(entries(redis_client, bad)["s-1"]["result"])["type"] == "succeeded"
    assert redis_client.llen(bad_queue) == 3 and redis_client.llen(boom_queue) == 2
    assert producer.status("c-2", tenant="bad")["state"] == "delivered"
    assert redeliver(ctx, send, undeliverable_ids(ctx)).delivered == 0  # nothing left, nothing twice
    assert "undeliverable" not in sweeper.watchdogs(ctx, int(__import__("time").time() * 1000))


def test_celery_sends_are_bounded_per_request(settings, redis_client):
    ctx = Context(settings)
    sent: list[str] = []
    target = ReplyTarget("celery", "svc.handle", unique("q"))
    for _ in range(MAX_CELERY_SENDS + 3):  # a chunk replayed again and again
        failed = send_all(ctx, lambda task, queue, payload: sent.append(task), [(0, "rid-1", target, {"x": 1})])
    assert len(sent) == MAX_CELERY_SENDS
    assert failed == [(0, f"celery:svc.handle: sent {MAX_CELERY_SENDS} times without being settled")]


def test_reply_stream_maxlen_bounds_a_stream(pipeline_settings, redis_client):
    s = pipeline_settings.replace(s3_bucket=None, reply_stream_maxlen=100)
    stream = unique("bounded")
    Producer.from_settings(s).submit_many(({"custom_id": f"m-{i}", "params": params(i)} for i in range(1000)),
                                          reply_to=f"redis-stream:{stream}")
    drain(Context(s))
    # approximate trimming (whole stream nodes of 100 entries): bounded near the setting, not 1,000
    assert 100 <= redis_client.xlen(stream) < 300
    assert int(redis_client.hget(Context(s).keys.counters, "delivered:default:succeeded")) == 1000
