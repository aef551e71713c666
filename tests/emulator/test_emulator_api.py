"""Every operation through the official SDK (sync and async), every answer checked against the spec."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import anthropic
import httpx2
import pytest
from emulator_helpers import Schemas, download, request, wait_ended

from batchline.emulator import EmulatorHandle, reply_text

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
BATCH_TS = ("created_at", "expires_at", "ended_at", "archived_at", "cancel_initiated_at")


def check_batch(schemas: Schemas, data: dict[str, Any]) -> None:
    schemas.validate("MessageBatch", data)
    for key in BATCH_TS:
        assert key in data
        assert data[key] is None or TS.match(data[key]), data[key]
    assert data["id"].startswith("msgbatch_")


def test_all_operations_sync(
    emu: EmulatorHandle, client: anthropic.Anthropic, http: httpx2.Client, schemas: Schemas
) -> None:
    reqs = [request(f"req-{i}", f"question {i}") for i in range(20)]
    schemas.validate("CreateMessageBatchParams", {"requests": reqs})
    raw = client.messages.batches.with_raw_response.create(requests=reqs)
    assert raw.headers["request-id"].startswith("req_")
    created = raw.http_response.json()
    check_batch(schemas, created)
    assert created["processing_status"] == "in_progress"
    assert created["request_counts"] == {
        "processing": 20,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert created["results_url"] is None and created["ended_at"] is None
    batch_id = created["id"]

    wait_ended(client, batch_id)
    got = client.messages.batches.with_raw_response.retrieve(batch_id).http_response.json()
    check_batch(schemas, got)
    assert got["request_counts"]["succeeded"] == 20
    assert got["results_url"] == f"{emu.base_url}/v1/messages/batches/{batch_id}/results"

    listed = client.messages.batches.with_raw_response.list(limit=5).http_response.json()
    schemas.validate("ListResponse_MessageBatch_", listed)
    assert listed["first_id"] == batch_id

    _, lines = download(http, got["results_url"])
    for line in lines:
        schemas.validate("MessageBatchIndividualResponse", line)
    by_id = {r.custom_id: r for r in client.messages.batches.results(batch_id)}
    assert set(by_id) == {r["custom_id"] for r in reqs}
    for r in reqs:
        result = by_id[r["custom_id"]].result
        assert result.type == "succeeded"
        assert result.message.content[0].text == reply_text(r["params"])
        assert result.message.model == r["params"]["model"]

    deleted = client.messages.batches.with_raw_response.delete(batch_id).http_response.json()
    schemas.validate("DeleteMessageBatchResponse", deleted)
    assert deleted == {"id": batch_id, "type": "message_batch_deleted"}
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch_id)


def test_all_operations_async(emu: EmulatorHandle, schemas: Schemas) -> None:
    async def main() -> None:
        async with anthropic.AsyncAnthropic(base_url=emu.base_url, api_key="k", max_retries=0) as c:
            reqs = [request(f"a{i}", f"async {i}") for i in range(5)]
            batch = await c.messages.batches.create(requests=reqs)
            canceled = await c.messages.batches.cancel(batch.id)
            assert canceled.processing_status == "canceling"
            raw = await c.messages.batches.with_raw_response.retrieve(batch.id)
            check_batch(schemas, raw.http_response.json())
            while (await c.messages.batches.retrieve(batch.id)).processing_status != "ended":
                await asyncio.sleep(0.05)
            page = await c.messages.batches.list()
            assert [b.id for b in page.data] == [batch.id]
            results = [r async for r in await c.messages.batches.results(batch.id)]
            assert {r.custom_id for r in results} == {r["custom_id"] for r in reqs}
            assert all(r.result.type in ("succeeded", "canceled") for r in results)
            deleted = await c.messages.batches.delete(batch.id)
            assert deleted.type == "message_batch_deleted"

    asyncio.run(main())


def test_list_pagination(emu: EmulatorHandle, client: anthropic.Anthropic, schemas: Schemas) -> None:
    ids = [client.messages.batches.create(requests=[request("x")]).id for _ in range(7)]
    newest_first = ids[::-1]
    assert [b.id for b in client.messages.batches.list(limit=3)] == newest_first  # auto-paging
    page = client.messages.batches.with_raw_response.list(limit=3).http_response.json()
    schemas.validate("ListResponse_MessageBatch_", page)
    assert [b["id"] for b in page["data"]] == newest_first[:3] and page["has_more"] is True
    assert page["first_id"] == newest_first[0] and page["last_id"] == newest_first[2]
    after = client.messages.batches.list(limit=3, after_id=page["last_id"])
    assert [b.id for b in after.data] == newest_first[3:6] and after.has_more
    last = client.messages.batches.list(limit=3, after_id=newest_first[5])
    assert [b.id for b in last.data] == newest_first[6:] and not last.has_more
    before = client.messages.batches.list(limit=2, before_id=newest_first[3])
    assert [b.id for b in before.data] == newest_first[1:3] and before.has_more
    assert len(client.messages.batches.list().data) == 7  # default limit 20
    for bad in (0, 1001):
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.list(limit=bad)
    empty = client.messages.batches.with_raw_response.list(after_id=newest_first[-1]).http_response.json()
    schemas.validate("ListResponse_MessageBatch_", empty)
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}


def test_auth_both_headers_and_missing_key(emu: EmulatorHandle, http: httpx2.Client, schemas: Schemas) -> None:
    url = "/v1/messages/batches"
    assert http.get(url, headers={"x-api-key": "k"}).status_code == 200
    assert http.get(url, headers={"authorization": "Bearer k"}).status_code == 200
    missing = http.get(url)
    assert missing.status_code == 401
    body = missing.json()
    schemas.validate("ErrorResponse", body)
    assert body["error"]["type"] == "authentication_error"
    assert body["request_id"] == missing.headers["request-id"]
    with anthropic.Anthropic(base_url=emu.base_url, api_key="k", max_retries=0) as c:
        no_key = {"Authorization": anthropic.omit, "X-Api-Key": anthropic.omit}
        with pytest.raises(anthropic.AuthenticationError):
            c.messages.batches.list(extra_headers=no_key)


def test_request_id_on_every_response(emu: EmulatorHandle, http: httpx2.Client) -> None:
    for r in (
        http.get("/v1/messages/batches", headers={"x-api-key": "k"}),
        http.get("/v1/messages/batches/msgbatch_nope", headers={"x-api-key": "k"}),
        http.get("/_emulator/books"),
    ):
        assert r.headers["request-id"].startswith("req_")


def test_not_found_and_state_errors(client: anthropic.Anthropic, schemas: Schemas, http: httpx2.Client) -> None:
    for call in (
        client.messages.batches.retrieve,
        client.messages.batches.cancel,
        client.messages.batches.delete,
    ):
        with pytest.raises(anthropic.NotFoundError) as info:
            call("msgbatch_missing")
        schemas.validate("ErrorResponse", info.value.body)
        assert info.value.type == "not_found_error"
    batch = client.messages.batches.create(requests=[request("a")])
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)  # still in progress
    r = http.get(f"/v1/messages/batches/{batch.id}/results", headers={"x-api-key": "k"})
    assert r.status_code == 400
    schemas.validate("ErrorResponse", r.json())
    wait_ended(client, batch.id)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.cancel(batch.id)  # already ended


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"requests": []}, "between 1 and"),
        ({"requests": [request("ok")], "extra": 1}, "extra"),
        ({"requests": [{**request("ok"), "metadata": {}}]}, "metadata"),
        ({"requests": [request("bad id!")]}, "custom_id"),
        ({"requests": [request("x" * 65)]}, "custom_id"),
        ({"requests": [request("ok\n")]}, "custom_id"),
        ({"requests": [request("dup"), request("dup")]}, "duplicate"),
        ({"requests": [{"custom_id": "a"}]}, "params"),
        ({"requests": [{"custom_id": "a", "params": "x"}]}, "params"),
        ({}, "requests"),
    ],
)
def test_create_synchronous_checks(
    client: anthropic.Anthropic, schemas: Schemas, body: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.post("/v1/messages/batches", body=body, cast_to=object)
    schemas.validate("ErrorResponse", info.value.body)
    assert info.value.type == "invalid_request_error"
    assert fragment in (info.value.api_message or "")


def test_create_request_count_limit(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(max_requests=3)
    client = make_client(emu)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[request(f"r{i}") for i in range(4)])
    assert client.messages.batches.create(requests=[request(f"r{i}") for i in range(3)])


def test_create_body_too_large(make_emu: Any, make_client: Any, http: httpx2.Client) -> None:
    emu = make_emu(max_body_bytes=2_000)
    client = make_client(emu)
    big = [request(f"r{i}", "x" * 500) for i in range(5)]
    with pytest.raises(anthropic.ContentTooLargeError) as info:
        client.messages.batches.create(requests=big)
    assert info.value.status_code == 413
    assert info.value.type == "request_too_large"
    # Without Content-Length (chunked upload) the limit holds while reading.
    with httpx2.Client(base_url=emu.base_url) as raw:
        chunks = iter([b'{"requests": [', b" " * 3_000, b"]}"])
        r = raw.post("/v1/messages/batches", content=chunks, headers={"x-api-key": "k"})
    assert r.status_code == 413
    assert emu.books()["batches_created"] == 0


def test_bad_params_end_as_errored_lines(client: anthropic.Anthropic, http: httpx2.Client, schemas: Schemas) -> None:
    good = request("good")
    bad = {
        "no-model": {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        "no-messages": {"model": "claude-sonnet-4-6", "max_tokens": 5},
        "no-max-tokens": {"model": "claude-opus-4-7", "messages": [{"role": "user", "content": "x"}]},
        "zero-tokens": {**good["params"], "max_tokens": 0},
        "stream": {**good["params"], "stream": True},
        "unknown-model": {**good["params"], "model": "gpt-4o"},
    }
    reqs = [good] + [{"custom_id": k, "params": v} for k, v in bad.items()]
    batch = client.messages.batches.create(requests=reqs)  # accepted: params are checked later
    ended = wait_ended(client, batch.id)
    assert ended.request_counts.errored == len(bad) and ended.request_counts.succeeded == 1
    _, lines = download(http, ended.results_url)
    for line in lines:
        schemas.validate("MessageBatchIndividualResponse", line)
    by_id = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert by_id["good"].type == "succeeded"
    for custom_id in bad:
        assert by_id[custom_id].type == "errored"
        assert by_id[custom_id].error.error.type == "invalid_request_error"
