"""Pure parts of tenants, keys, quotas and the gateway's create checks, as tables of cases."""

from __future__ import annotations

import pytest

from batchline import apikeys
from batchline.errors import InvalidRequest, RetryableError
from batchline.keys import Keys
from batchline.quotas import Limits, QuotaExceeded, Usage, check, intake_limits
from batchline.tenants import Tenant


@pytest.mark.parametrize(
    ("limits", "usage", "requests", "size", "quota"),
    [
        (Limits(), Usage(10**9, 10**12, 10**6), 10**6, 10**9, None),
        (Limits(max_queued=10), Usage(9, 0, 0), 1, 1, None),
        (Limits(max_queued=10), Usage(9, 0, 0), 2, 1, "max_queued"),
        (Limits(max_queued_bytes=100), Usage(0, 60, 0), 1, 40, None),
        (Limits(max_queued_bytes=100), Usage(0, 60, 0), 1, 41, "max_queued_bytes"),
        (Limits(monthly_budget_usd=5.0), Usage(0, 0, 4.99), 1, 1, None),
        (Limits(monthly_budget_usd=5.0), Usage(0, 0, 5.0), 1, 1, "monthly_budget_usd"),
        (Limits(max_queued=0), Usage(0, 0, 0), 1, 1, "max_queued"),
    ],
)
def test_quota_decision(limits, usage, requests, size, quota):
    if quota is None:
        check("t", limits, usage, requests, size)
    else:
        with pytest.raises(QuotaExceeded) as info:
            check("t", limits, usage, requests, size)
        assert info.value.quota == quota and str(info.value).startswith(quota)


def test_keys_are_random_hashed_and_compared_in_constant_time():
    a, b = apikeys.new_key(), apikeys.new_key()
    assert a != b and a.startswith("blk_") and len(a) > 40
    assert apikeys.key_hash(a) == apikeys.key_hash(a) != apikeys.key_hash(b)
    assert apikeys.same_hash(apikeys.key_hash(a), apikeys.key_hash(a))
    assert not apikeys.same_hash(apikeys.key_hash(a), apikeys.key_hash(b))
    assert a not in apikeys.fingerprint(apikeys.key_hash(a))


@pytest.mark.parametrize(
    ("patterns", "target", "allowed"),
    [
        ((), "redis-stream:out", False),
        (("redis-stream:svc-*",), "redis-stream:svc-out", True),
        (("redis-stream:svc-*",), "redis-stream:other", False),
        (("celery:svc.*@svc",), "celery:svc.handle@svc", True),
        (("redis-stream:*",), "redis-stream:bl.gw.msgbatch_0", False),  # the gateway's own streams never
    ],
)
def test_reply_to_patterns(patterns, target, allowed):
    assert Tenant("t", reply_to=patterns).allows_reply_to(target, Keys("bl")) is allowed


def test_tenant_round_trips_through_json():
    digest = apikeys.key_hash(apikeys.new_key())
    t = Tenant("svc", max_queued=5, monthly_budget_usd=1.5, weight=2, reply_to=("celery:x",), keys={digest: 0})
    assert Tenant.from_json(t.to_json()) == t
    assert digest not in str(t.public()) and t.public()["keys"] == [{"fingerprint": digest[:12], "expires_at_ms": None}]


def test_create_checks():
    from batchline.gateway.validate import batch_requests

    p = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    assert batch_requests({"requests": [{"custom_id": "a", "params": p}]}, 10) == [("a", p)]
    with pytest.raises(InvalidRequest, match="at most 1 requests"):
        batch_requests({"requests": [{"custom_id": "a", "params": p}, {"custom_id": "b", "params": p}]}, 1)
    with pytest.raises(InvalidRequest) as info:
        batch_requests({"requests": [{"custom_id": "a", "params": {**p, "stream": True}}]}, 10)
    assert info.value.field == "requests.0.params.stream"


@pytest.mark.parametrize(
    ("exc", "status", "retry_after"),
    [
        (InvalidRequest("requests.0.custom_id", "bad"), 400, None),
        (QuotaExceeded("max_queued", "full"), 429, None),
        (RetryableError("backpressure", 7.0), 529, 7.0),
    ],
)
def test_batchline_errors_map_to_the_api_statuses(exc, status, retry_after):
    from batchline.gateway.errors import error_response, from_exception

    err = from_exception(exc)
    assert (err.status, err.retry_after) == (status, retry_after)
    resp = error_response(err.status, err.message, err.retry_after)
    assert resp.status_code == status
    assert (resp.headers.get("retry-after") is not None) == (retry_after is not None)
    with pytest.raises(ZeroDivisionError):  # anything else is not ours to answer: a 500 upstream
        from_exception(ZeroDivisionError())


@pytest.mark.parametrize(
    ("admission", "quota", "over", "expected"),
    [
        ((0, 0), None, False, (-1, "tenant_queued_requests", -1, "tenant_queued_bytes")),  # no limits at all
        ((100, 0), Limits(max_queued=10), False, (10, "max_queued", -1, "tenant_queued_bytes")),  # quota tighter
        ((5, 0), Limits(max_queued=10), False, (5, "tenant_queued_requests", -1, "tenant_queued_bytes")),
        ((0, 500), Limits(max_queued_bytes=900), False, (-1, "tenant_queued_requests", 500, "tenant_queued_bytes")),
        ((0, 0), Limits(max_queued=0), False, (0, "max_queued", -1, "tenant_queued_bytes")),  # 0 takes nothing
        ((7, 8), Limits(monthly_budget_usd=1.0), True, (0, "monthly_budget_usd", 8, "tenant_queued_bytes")),
    ],
)
def test_intake_limits_take_the_tighter_and_name_it(admission, quota, over, expected):
    assert intake_limits(admission, quota, over) == expected


def test_client_address_reads_only_trusted_forwarded_entries():
    from starlette.datastructures import Headers

    from batchline.gateway.auth import client_address

    two = Headers(raw=[(b"x-forwarded-for", b"6.6.6.6, 10.0.0.1"), (b"x-forwarded-for", b"10.0.0.2")])
    assert client_address("172.16.0.9", two, 0) == "172.16.0.9"  # no trusted proxy: the header is ignored
    assert client_address("172.16.0.9", two, 1) == "10.0.0.2"
    assert client_address("172.16.0.9", two, 2) == "10.0.0.1"
    assert client_address("172.16.0.9", two, 5) == "6.6.6.6"  # fewer entries than hops: the leftmost
    assert client_address("172.16.0.9", Headers(), 1) == "172.16.0.9"
    assert client_address(None, Headers(), 0) == "unknown"
