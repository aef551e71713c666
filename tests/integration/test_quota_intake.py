"""A tenant's quotas hold for every producer, inside the intake script: the Python producer and
`batchline submit` as well as the gateway, and two writers at once never pass a quota together."""

from __future__ import annotations

import threading
import time

import pytest

from batchline.errors import Backpressure
from batchline.keys import Keys, request_id
from batchline.pending import count as pending_count
from batchline.producers.producer import Producer
from batchline.quotas import QuotaExceeded
from batchline.tenants import Tenant, TenantStore


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": f"q{i}"}]}


def items(prefix: str, n: int) -> list[dict]:
    return [{"custom_id": f"{prefix}-{i}", "params": params(i)} for i in range(n)]


def test_the_python_producer_is_held_to_a_registered_tenants_queued_quota(settings, redis_client):
    TenantStore(redis_client, Keys(settings.key_prefix)).add(Tenant("small", max_queued=5))
    producer = Producer.from_settings(settings)
    with pytest.raises(QuotaExceeded) as info:
        producer.submit_many(items("q", 8), tenant="small")
    exc = info.value
    assert isinstance(exc, Backpressure) and exc.quota == "max_queued" and "max_queued" in str(exc)
    assert exc.report.accepted == 5 and exc.index == 5  # the first five stored, nothing after
    assert pending_count(redis_client, producer.keys) == 5
    assert not redis_client.exists(producer.keys.request(request_id("small", "q-5")))
    assert producer.submit("q-0", params(0), tenant="small") == "duplicate"  # a duplicate is still answered
    with pytest.raises(QuotaExceeded, match="max_queued"):
        producer.submit("other", params(1), tenant="small")
    assert producer.submit("free", params(1), tenant="unregistered") == "accepted"  # only that tenant's


def test_the_bytes_quota_and_the_monthly_budget_refuse_by_name(settings, redis_client):
    keys = Keys(settings.key_prefix)
    store = TenantStore(redis_client, keys)
    store.add(Tenant("bytes", max_queued_bytes=1000))
    store.add(Tenant("spender", monthly_budget_usd=1.0))
    day = time.strftime("%Y-%m-%d", time.gmtime())
    redis_client.hset(keys.cost_day(day), "spender|claude-haiku-4-5|batch", 1_500_000)  # $1.50 this month
    redis_client.sadd(keys.cost_days, day)
    producer = Producer.from_settings(settings)
    big = {**params(0), "system": "x" * 2000}
    with pytest.raises(QuotaExceeded, match="max_queued_bytes") as info:
        producer.submit("big", big, tenant="bytes")
    assert info.value.tenant == "bytes"
    with pytest.raises(QuotaExceeded, match=r"monthly_budget_usd: tenant 'spender' spent \$1.50") as info:
        producer.submit_many(items("s", 3), tenant="spender")
    assert info.value.report.accepted == 0 and pending_count(redis_client, keys) == 0


def test_two_writers_at_once_never_pass_the_quota_together(settings, redis_client):
    """Check and write are one script: two producers (two gateway replicas, say) racing for the last
    room of a quota store exactly the quota between them, never more."""
    TenantStore(redis_client, Keys(settings.key_prefix)).add(Tenant("raced", max_queued=60))
    start = threading.Barrier(4)

    def writer(w: int) -> None:
        producer = Producer.from_settings(settings)
        start.wait()
        try:
            for j in range(0, 50, 5):  # small chunks, interleaved with the others'
                producer.submit_many(items(f"w{w}-{j}", 5), tenant="raced", chunk_size=5)
        except QuotaExceeded:
            pass  # this writer met the quota; the others go on until they do
        producer.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert pending_count(redis_client, Keys(settings.key_prefix)) == 60  # 4 x 50 offered, 60 allowed
