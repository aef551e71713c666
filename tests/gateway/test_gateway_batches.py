"""The Message Batches API of the gateway through the official SDK (sync and async), against real
Redis, the emulator over HTTP and moto S3; the pipeline driven by its plain functions (drain)."""

from __future__ import annotations

import asyncio
import json
import time

import anthropic
import httpx2 as httpx
import pytest

from batchline.emulator import reply_text
from batchline.fields import R
from batchline.gateway.batches import prefix_of
from batchline.keys import Keys, request_id
from batchline.pending import count as pending_count
from batchline.producers.producer import Producer
from batchline.workers.context import Context
from tests.gateway.conftest import params
from tests.integration.pipeline import drain


def sdk(rig, tenant: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=rig.base_url, api_key=rig.keys[tenant], max_retries=0)


def requests_of(tenant: str, n: int) -> list[dict]:
    return [{"custom_id": f"q-{i}", "params": params(i, tenant)} for i in range(n)]


def test_two_tenants_with_the_same_custom_ids_get_exactly_their_own_results(rig):
    rig.add("alpha")
    rig.add("beta")
    alpha = sdk(rig, "alpha")

    def beta():  # one async client per event loop
        return anthropic.AsyncAnthropic(base_url=rig.base_url, api_key=rig.keys["beta"], max_retries=0)

    async def beta_create():
        async with beta() as client:
            return await client.messages.batches.create(requests=requests_of("beta", 40))

    a = alpha.messages.batches.create(requests=requests_of("alpha", 60))
    b = asyncio.run(beta_create())
    assert a.id != b.id and a.processing_status == "in_progress" and a.request_counts.processing == 60
    assert a.results_url is None
    drain(Context(rig.settings))

    done = alpha.messages.batches.retrieve(a.id)
    assert done.processing_status == "ended" and done.ended_at is not None
    assert done.request_counts.succeeded == 60 and done.request_counts.processing == 0
    lines = list(alpha.messages.batches.results(a.id))
    assert sorted(r.custom_id for r in lines) == sorted(f"q-{i}" for i in range(60))
    for r in lines:
        assert r.result.type == "succeeded"
        assert r.result.message.content[0].text == reply_text(params(int(r.custom_id[2:]), "alpha"))

    async def beta_results() -> list:
        async with beta() as client:
            got = await client.messages.batches.retrieve(b.id)
            assert got.processing_status == "ended" and got.request_counts.succeeded == 40
            return [r async for r in await client.messages.batches.results(b.id)]

    blines = asyncio.run(beta_results())
    assert sorted(r.custom_id for r in blines) == sorted(f"q-{i}" for i in range(40))
    for r in blines:
        assert r.result.message.content[0].text == reply_text(params(int(r.custom_id[2:]), "beta"))

    # the same custom_ids again are a new client batch, not duplicates
    again = alpha.beta.messages.batches.create(requests=requests_of("alpha", 5), betas=["message-batches-2024-09-24"])
    assert again.id != a.id and again.request_counts.processing == 5


def test_another_tenants_batch_is_not_found_and_lists_are_per_tenant(rig):
    rig.add("alpha")
    rig.add("beta")
    alpha, beta = sdk(rig, "alpha"), sdk(rig, "beta")
    a = alpha.messages.batches.create(requests=requests_of("alpha", 3))
    for call in (beta.messages.batches.retrieve, beta.messages.batches.cancel, beta.messages.batches.delete):
        with pytest.raises(anthropic.NotFoundError) as info:
            call(a.id)
        assert info.value.body["error"]["type"] == "not_found_error"
    resp = httpx.get(f"{rig.base_url}/v1/messages/batches/{a.id}/results", headers={"x-api-key": rig.keys["beta"]})
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.NotFoundError):
        beta.messages.batches.retrieve("msgbatch_000000000000000000000000")
    assert [x.id for x in beta.messages.batches.list()] == []
    assert [x.id for x in alpha.messages.batches.list()] == [a.id]
    assert alpha.messages.batches.retrieve(a.id).processing_status == "in_progress"  # beta's cancel did nothing


def test_list_is_newest_first_and_pages(rig):
    rig.add("alpha")
    alpha = sdk(rig, "alpha")
    made = [alpha.messages.batches.create(requests=requests_of("alpha", 1)).id for _ in range(5)]
    page = alpha.messages.batches.list(limit=2)
    assert [x.id for x in page.data] == made[::-1][:2] and page.has_more
    assert page.first_id == made[4] and page.last_id == made[3]
    assert [x.id for x in alpha.messages.batches.list(limit=2)] == made[::-1]  # auto-pagination by after_id
    before = alpha.messages.batches.list(limit=2, before_id=made[1])
    assert [x.id for x in before.data] == [made[3], made[2]] and before.has_more


def test_bad_missing_revoked_and_rotated_keys(rig):
    rig.add("alpha")
    good = rig.keys["alpha"]
    for headers in ({}, {"x-api-key": "blk_nope"}, {"authorization": "Bearer blk_nope"}, {"authorization": "Basic x"}):
        resp = httpx.get(f"{rig.base_url}/v1/messages/batches", headers=headers)
        assert resp.status_code == 401, headers
        assert resp.json()["type"] == "error" and resp.json()["error"]["type"] == "authentication_error"
        assert "blk_nope" not in resp.text
    assert (
        httpx.get(f"{rig.base_url}/v1/messages/batches", headers={"authorization": f"Bearer {good}"}).status_code == 200
    )

    new = rig.store.rotate("alpha")  # the old key keeps working for the grace period
    for key in (good, new):
        assert anthropic.Anthropic(base_url=rig.base_url, api_key=key, max_retries=0).messages.batches.list().data == []
    newer = rig.store.rotate("alpha", grace_seconds=0)  # no grace: both earlier keys stop now
    for key in (good, new):
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=rig.base_url, api_key=key, max_retries=0).messages.batches.list()
    client = anthropic.Anthropic(base_url=rig.base_url, api_key=newer, max_retries=0)
    client.messages.batches.list()
    rig.store.revoke("alpha")
    with pytest.raises(anthropic.AuthenticationError):
        client.messages.batches.list()
    stored = rig.store.redis.hgetall(Keys(rig.settings.key_prefix).api_keys)
    assert newer.encode() not in b"".join([*stored, *stored.values()])  # only hashes are kept


def test_quotas_refuse_with_429_naming_the_quota_and_store_nothing(rig):
    rig.add("small", max_queued=10, max_queued_bytes=100_000)
    client = sdk(rig, "small")
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.batches.create(requests=requests_of("small", 11))
    assert (
        info.value.body["error"]["type"] == "rate_limit_error" and "max_queued" in info.value.body["error"]["message"]
    )
    keys = Keys(rig.settings.key_prefix)
    assert pending_count(rig.store.redis, keys) == 0
    client.messages.batches.create(requests=requests_of("small", 8))
    with pytest.raises(anthropic.RateLimitError, match="max_queued"):
        client.messages.batches.create(requests=requests_of("small", 3))
    big = [{"custom_id": "big", "params": {**params(0, "small"), "system": "x" * 120_000}}]
    rig.store.set("small", max_queued=None)
    with pytest.raises(anthropic.RateLimitError, match="max_queued_bytes"):
        client.messages.batches.create(requests=big)
    assert pending_count(rig.store.redis, keys) == 8
    # the monthly budget comes from the cost ledger
    drain(Context(rig.settings))
    rig.store.set("small", monthly_budget_usd=0.000001)
    with pytest.raises(anthropic.RateLimitError, match="monthly_budget_usd"):
        client.messages.batches.create(requests=requests_of("small", 1))


def test_cancel_then_delete(rig):
    rig.add("alpha")
    client = sdk(rig, "alpha")
    b = client.messages.batches.create(requests=requests_of("alpha", 20))
    with pytest.raises(anthropic.BadRequestError, match="has not ended"):
        client.messages.batches.delete(b.id)
    canceled = client.messages.batches.cancel(b.id)
    assert canceled.cancel_initiated_at is not None
    # queued requests leave the queue at once; a worker's sweep delivers each one `canceled`
    assert canceled.processing_status == "canceling"
    drain(Context(rig.settings))  # nothing of it reaches a provider batch
    done = client.messages.batches.retrieve(b.id)
    assert done.processing_status == "ended" and done.request_counts.canceled == 20
    lines = list(client.messages.batches.results(b.id))
    assert len(lines) == 20 and {r.result.type for r in lines} == {"canceled"}
    assert Context(rig.settings).redis.zcard(Keys(rig.settings.key_prefix).batches) == 0
    assert client.messages.batches.delete(b.id).type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(b.id)
    assert client.messages.batches.list().data == []


def test_cancel_inside_a_provider_batch_goes_canceling_then_ended(rig):
    from batchline.workers import aggregator

    rig.add("alpha")
    client = sdk(rig, "alpha")
    b = client.messages.batches.create(requests=requests_of("alpha", 10))
    ctx = Context(rig.settings)
    aggregator.pack(ctx)  # now inside a provider batch
    assert client.messages.batches.cancel(b.id).processing_status == "canceling"
    drain(ctx)
    done = client.messages.batches.retrieve(b.id)
    assert done.processing_status == "ended"
    counts = done.request_counts
    assert counts.canceled + counts.succeeded == 10 and counts.processing == 0
    assert {r.result.type for r in client.messages.batches.results(b.id)} <= {"canceled", "succeeded"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"requests": []}, "requests"),
        ({}, "requests"),
        ({"requests": [{"custom_id": "a b", "params": params(0, "t")}]}, "requests.0.custom_id"),
        ({"requests": [{"custom_id": "a", "params": params(0, "t")}] * 2}, "requests.1.custom_id"),
        ({"requests": [{"custom_id": "a", "params": params(0, "t"), "x": 1}]}, "requests.0.x"),
        ({"requests": [{"custom_id": "a", "params": {"model": "m", "messages": []}}]}, "requests.0.params"),
        ({"requests": [{"custom_id": "a", "params": params(0, "t")}], "extra": 1}, "extra"),
    ],
)
def test_create_checks_name_the_field_and_store_nothing(rig, body, field):
    rig.add("alpha")
    resp = httpx.post(
        f"{rig.base_url}/v1/messages/batches", headers={"x-api-key": rig.keys["alpha"]}, content=json.dumps(body)
    )
    assert resp.status_code == 400
    err = resp.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"].startswith(field)
    assert pending_count(rig.store.redis, Keys(rig.settings.key_prefix)) == 0
    assert sdk(rig, "alpha").messages.batches.list().data == []


def test_redriven_transient_errors_are_not_final_outcomes(rig, emulator):
    from batchline.workers import aggregator, poller, results

    rig.add("alpha")
    client = sdk(rig, "alpha")
    emulator.set_faults(error_rates={"overloaded_error": 0.5})
    b = client.messages.batches.create(requests=requests_of("alpha", 40))
    ctx, keys = Context(rig.settings), Keys(rig.settings.key_prefix)
    aggregator.pack(ctx)
    handed: list[str] = []
    deadline = time.monotonic() + 30
    while not handed and time.monotonic() < deadline:
        time.sleep(0.2)
        ctx.redis.delete(keys.poll_lock())
        poller.poll(ctx, handed.append)
    results.collect(ctx, handed[0])
    redriven = pending_count(ctx.redis, keys)
    assert redriven > 0  # about half came back overloaded: queued again, not an outcome
    mid = client.messages.batches.retrieve(b.id)
    assert mid.processing_status == "in_progress"
    assert mid.request_counts.processing == redriven and mid.request_counts.errored == 0
    assert mid.request_counts.succeeded == 40 - redriven
    emulator.set_faults(error_rates={})
    drain(ctx)
    done = client.messages.batches.retrieve(b.id)
    assert done.processing_status == "ended" and done.request_counts.succeeded == 40


def test_betas_of_a_client_batch_reach_its_requests_and_provider_batches(rig, redis_client, emulator):
    rig.add("alpha")
    alpha = sdk(rig, "alpha")
    keys = Keys(rig.settings.key_prefix)
    betas = ["some-beta-2025-01-01", "output-300k-2026-03-24"]
    with_betas = alpha.beta.messages.batches.create(requests=requests_of("alpha", 4), betas=betas)
    plain = alpha.messages.batches.create(requests=requests_of("alpha", 3))

    def stored(gid: str, n: int) -> list[bytes | None]:
        rids = [request_id("alpha", f"{prefix_of(gid)}{i}") for i in range(n)]
        return [redis_client.hget(keys.request(rid), R.BETAS) for rid in rids]

    assert stored(with_betas.id, 4) == [b"output-300k-2026-03-24,some-beta-2025-01-01"] * 4
    assert all(b in (None, b"") for b in stored(plain.id, 3))  # the other client batch has none

    with pytest.raises(anthropic.BadRequestError) as info:  # a name intake refuses: nothing is stored
        alpha.beta.messages.batches.create(requests=requests_of("alpha", 2), betas=["ok-1", "not ok"])
    assert info.value.body["error"]["type"] == "invalid_request_error"
    assert info.value.body["error"]["message"].startswith("anthropic-beta:")
    assert [b.id for b in alpha.messages.batches.list()] == [plain.id, with_betas.id]
    assert pending_count(redis_client, keys) == 7

    drain(Context(rig.settings))
    books, producer = emulator.books(), Producer.from_settings(rig.settings)
    for gid, n, expected in ((with_betas.id, 4, sorted(betas)), (plain.id, 3, [])):
        assert alpha.messages.batches.retrieve(gid).request_counts.succeeded == n
        for i in range(n):
            st = producer.status(f"{prefix_of(gid)}{i}", tenant="alpha")
            assert st is not None and st["outcome"] == "succeeded"
            assert books["batch_betas"].get(st["provider_batch_id"], []) == expected  # the create's anthropic-beta
