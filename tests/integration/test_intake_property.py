"""Hypothesis throws generated (mostly malformed) requests at intake: each is accepted whole or
refused with an error naming a field and a rule, and Redis holds nothing from the refused ones."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchline.errors import InvalidRequest
from batchline.keys import Keys, request_id
from batchline.pending import count as pending_count
from batchline.producers.producer import Producer

json_scalar = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=8)
json_value = st.recursive(json_scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                          max_leaves=6)
message = st.fixed_dictionaries({}, optional={"role": st.sampled_from(["user", "assistant", "system", 3]),
                                              "content": st.text(max_size=20) | json_value})
params = st.fixed_dictionaries({}, optional={
    "model": st.sampled_from(["claude-haiku-4-5", "", 7, None]),
    "max_tokens": st.sampled_from([1, 64, 0, -1, "64", 1.5, True, None]),
    "messages": st.lists(message, max_size=2) | json_value,
    "stream": st.sampled_from([True, False, None]),
    "temperature": json_value,
    "betas": st.just(["x"]),
}) | json_value
custom_id = st.from_regex(r"[a-zA-Z0-9_-]{1,64}", fullmatch=True) | st.text(max_size=70) | st.integers()
reply_to = st.sampled_from([None, "", "redis-stream:out", "celery:app.task@q", "celery:", "redis-stream:",
                            "http://x", "celery:1bad"]) | st.text(max_size=12)
FIELDS = {"custom_id", "tenant", "params", "reply_to", "metadata"}


@pytest.fixture(scope="module")
def producer(redis_server):
    from batchline.config.settings import Settings

    p = Producer.from_settings(Settings(redis_url=redis_server.url, key_prefix="prop", max_batch_bytes=2048))
    yield p
    p.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cid=custom_id, body=params, target=reply_to, meta=st.none() | json_value)
def test_accepted_whole_or_refused_with_nothing_stored(producer, cid, body, target, meta):
    r = producer.redis
    keys = Keys("prop")
    before = (r.dbsize(), pending_count(r, keys))
    try:
        producer.submit(cid, body, reply_to=target, metadata=meta, tenant="t")
    except InvalidRequest as exc:
        assert exc.field.split(".")[0].split("[")[0] in FIELDS
        assert exc.rule and str(exc).startswith(exc.field)
        assert (r.dbsize(), pending_count(r, keys)) == before
        return
    stored = r.hgetall(keys.request(request_id("t", cid)))
    assert json.loads(stored[b"p"]) == body
    assert body["max_tokens"] >= 1 and body["messages"] and not body.get("stream")
    r.delete(keys.request(request_id("t", cid)))
    r.delete(keys.pending_of("t"), keys.pending_tenants)
