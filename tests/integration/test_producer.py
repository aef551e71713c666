"""The producer against a real Redis: idempotency, conflicts, tenants, validation, nothing half-stored."""

from __future__ import annotations

import pytest

from batchline.errors import Conflict, InvalidRequest
from batchline.keys import Keys, request_id
from batchline.pending import count as pending_count
from batchline.producers.producer import Producer


def params(text: str = "hi", **extra: object) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture
def producer(settings, redis_client):
    p = Producer.from_settings(settings)
    yield p
    p.close()


def test_submit_is_idempotent_and_detects_conflicts(producer, redis_client):
    assert producer.submit("a-1", params(), reply_to="redis-stream:out") == "accepted"
    assert producer.submit("a-1", params(), reply_to="redis-stream:out") == "duplicate"
    with pytest.raises(Conflict, match="a-1"):
        producer.submit("a-1", params("other"), reply_to="redis-stream:out")
    keys = Keys(producer.settings.key_prefix)
    assert pending_count(redis_client, keys) == 1
    assert producer.status("a-1")["state"] == "queued"


def test_two_tenants_share_a_custom_id_without_meeting(producer, redis_client):
    assert producer.submit("same", params("x"), tenant="alpha") == "accepted"
    assert producer.submit("same", params("y"), tenant="beta") == "accepted"
    assert request_id("alpha", "same") != request_id("beta", "same")
    assert producer.status("same", tenant="alpha")["tenant"] == "alpha"
    assert producer.status("same", tenant="gamma") is None


@pytest.mark.parametrize(
    ("custom_id", "body", "reply_to", "field"),
    [
        ("bad id!", params(), None, "custom_id"),
        ("x" * 65, params(), None, "custom_id"),
        ("ok", {"messages": [], "max_tokens": 1}, None, "params.model"),
        ("ok", params(max_tokens=0), None, "params.max_tokens"),
        ("ok", {"model": "m", "max_tokens": 1}, None, "params.messages"),
        ("ok", params(stream=True), None, "params.stream"),
        ("ok", params(), "kafka:topic", "reply_to"),
        ("ok\n", params(), None, "custom_id"),
        ("ok", params(), "redis-stream:out\n", "reply_to"),
        ("ok", params(), "celery:batchline.results.collect", "reply_to"),
        ("ok", params(), "celery:app.task@batchline.results", "reply_to"),
        ("ok", params("x" * 5000), None, "params"),
    ],
)
def test_bad_input_names_field_and_stores_nothing(settings, redis_client, custom_id, body, reply_to, field):
    producer = Producer.from_settings(settings.replace(max_batch_bytes=4096))
    with pytest.raises(InvalidRequest) as info:
        producer.submit(custom_id, body, reply_to=reply_to)
    assert info.value.field == field
    assert redis_client.dbsize() == 0


def test_submit_many_counts_and_keeps_good_lines(producer, redis_client):
    items = [{"custom_id": f"r-{i}", "params": params(str(i))} for i in range(2500)]
    items.insert(10, {"custom_id": "bad!", "params": params()})
    items.insert(20, {"custom_id": "r-5", "params": params("different")})  # conflict with r-5
    items.append({"custom_id": "r-7", "params": params("7")})  # duplicate
    report = producer.submit_many(items, reply_to="redis-stream:out", chunk_size=700)
    assert report.accepted == 2500
    assert report.duplicate == 1
    assert sorted(r.field for r in report.rejected) == ["custom_id", "custom_id"]
    assert {r.custom_id for r in report.rejected} == {"bad!", "r-5"}
    assert pending_count(redis_client, Keys(producer.settings.key_prefix)) == 2500


def test_reply_to_may_not_point_into_batchlines_own_keys(producer, redis_client):
    for target in (f"redis-stream:{producer.settings.key_prefix}:pending",
                   f"redis-stream:{producer.settings.key_prefix}:backoff:create"):
        with pytest.raises(InvalidRequest, match="own keys"):
            producer.submit("x", params(), reply_to=target)
    assert redis_client.dbsize() == 0
