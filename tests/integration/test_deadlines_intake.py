"""Deadlines at intake against a real Redis: the Python API, a submit file and the gateway's
/v1/requests store them on the record; a bad one is refused by field and rule, nothing stored."""

from __future__ import annotations

import io
import json
import time

import httpx2 as httpx
import pytest

from batchline.clock import iso
from batchline.errors import InvalidRequest
from batchline.fields import R
from batchline.keys import Keys, request_id
from batchline.pending import count as pending_count
from batchline.producers.producer import Producer
from batchline.producers.submit_cli import submit_file


def params(text: str = "hi") -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def producer(settings, redis_client):
    p = Producer.from_settings(settings.replace(min_deadline_seconds=60))
    yield p
    p.close()


def test_deadline_seconds_and_rfc3339_are_stored_and_shown(producer, redis_client):
    before = int(time.time() * 1000)
    assert producer.submit("rel", params(), deadline_seconds=600) == "accepted"
    assert producer.submit("abs", params(), deadline="2099-01-01T06:00:00+00:00") == "accepted"
    assert producer.submit("none", params()) == "accepted"
    keys = Keys(producer.settings.key_prefix)
    rec = redis_client.hmget(keys.request(request_id("default", "rel")), R.DEADLINE, R.MODEL)
    assert before + 600_000 <= int(rec[0]) <= int(time.time() * 1000) + 600_000
    assert rec[1] == b"claude-haiku-4-5"
    status = producer.status("abs")
    assert status["deadline"] == "2099-01-01T06:00:00.000Z"
    assert status["path"] == "batch" and "routed at the next pack" in status["path_reason"]
    assert producer.status("none")["path_reason"] == "no deadline" and "deadline" not in producer.status("none")
    # both deadline requests wait to be routed; the one without never enters the routing set
    assert set(redis_client.zrange(keys.deadlines_new, 0, -1)) == {
        request_id("default", "rel").encode(),
        request_id("default", "abs").encode(),
    }
    # the same request again is a duplicate; its first deadline stands
    assert producer.submit("rel", params(), deadline_seconds=9000) == "duplicate"
    assert redis_client.hget(keys.request(request_id("default", "rel")), R.DEADLINE) == rec[0]


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        ({"deadline_seconds": 10}, "deadline_seconds", "BATCHLINE_MIN_DEADLINE_SECONDS"),
        ({"deadline": "2001-01-01T00:00:00Z"}, "deadline", "in the past"),
        ({"deadline": "2099-01-01T00:00:00Z", "deadline_seconds": 600}, "deadline", "not both"),
        ({"deadline": "2099-01-01 06:00"}, "deadline", "UTC offset"),
    ],
)
def test_bad_deadline_is_refused_and_nothing_stored(producer, redis_client, kwargs, field, rule):
    with pytest.raises(InvalidRequest) as err:
        producer.submit("bad", params(), **kwargs)
    assert (err.value.field, rule in err.value.rule) == (field, True)
    keys = Keys(producer.settings.key_prefix)
    assert not redis_client.exists(keys.request(request_id("default", "bad")))
    assert pending_count(redis_client, keys) == 0 and redis_client.zcard(keys.deadlines_new) == 0


def test_submit_file_carries_deadlines_and_reports_bad_lines(producer):
    lines = [
        {"custom_id": "f-1", "params": params(), "deadline_seconds": 900},
        {"custom_id": "f-2", "params": params(), "deadline": "2000-01-01T00:00:00Z"},
        {"custom_id": "f-3", "params": params()},
    ]
    body = io.BytesIO(b"".join(json.dumps(x).encode() + b"\n" for x in lines))
    report, rejected = submit_file(producer, body, None, None)
    assert report.accepted == 2
    assert [(r.index, r.field) for r in rejected] == [(2, "deadline")]  # file lines count from 1
    assert "deadline" in producer.status("f-1") and "deadline" not in producer.status("f-3")


def test_gateway_requests_take_a_deadline(settings, redis_client):
    from batchline.gateway.server import run_in_thread
    from batchline.tenants import Tenant, TenantStore

    store = TenantStore(redis_client, Keys(settings.key_prefix), settings.key_grace_seconds)
    key = store.add(Tenant("alpha"))
    with run_in_thread(settings.replace(gateway_rate_limit=10_000)) as gw:
        items = [
            {"custom_id": "g-1", "params": params(), "deadline": iso(int(time.time() * 1000) + 3_600_000)},
            {"custom_id": "g-2", "params": params(), "deadline_seconds": 5},
        ]
        resp = httpx.post(f"{gw.base_url}/v1/requests", headers={"x-api-key": key}, json=items)
        assert resp.status_code == 200, resp.text
        report = resp.json()
        assert report["accepted"] == 1
        assert [(r["index"], r["field"]) for r in report["rejected"]] == [(1, "deadline_seconds")]
        assert "BATCHLINE_MIN_DEADLINE_SECONDS" in report["rejected"][0]["reason"]
        status = httpx.get(f"{gw.base_url}/v1/requests/g-1", headers={"x-api-key": key}).json()
        assert status["deadline"] and status["path"] == "batch"
