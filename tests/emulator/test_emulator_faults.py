"""HTTP faults on demand, each observed through the SDK; the control API and the books."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx2
import pytest
from emulator_helpers import Schemas, request, wait_ended


def test_http_429_with_retry_after(make_emu: Any, make_client: Any, schemas: Schemas) -> None:
    emu = make_emu(http_429_rate=1.0, retry_after_seconds=7)
    with pytest.raises(anthropic.RateLimitError) as info:
        make_client(emu).messages.batches.list()
    err = info.value
    assert err.status_code == 429 and err.type == "rate_limit_error"
    assert err.response.headers["retry-after"] == "7"
    assert err.request_id and err.request_id == err.response.headers["request-id"]
    schemas.validate("ErrorResponse", err.body)
    assert emu.books()["http_faults"]["http_429"] == 1


def test_http_529_and_500(make_emu: Any, make_client: Any, schemas: Schemas) -> None:
    emu = make_emu(http_529_rate=1.0)
    client = make_client(emu)
    with pytest.raises(anthropic.OverloadedError) as info:
        client.messages.batches.create(requests=[request("a")])
    assert info.value.status_code == 529 and info.value.type == "overloaded_error"
    schemas.validate("ErrorResponse", info.value.body)
    emu.set_faults(http_529_rate=0.0, http_500_rate=1.0)
    with pytest.raises(anthropic.InternalServerError) as info500:
        client.messages.batches.list()
    assert not isinstance(info500.value, anthropic.OverloadedError)
    assert info500.value.status_code == 500 and info500.value.type == "api_error"
    schemas.validate("ErrorResponse", info500.value.body)
    assert emu.books()["batches_created"] == 0


def test_faults_limited_to_operations(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(http_500_rate=1.0, fault_operations=("create",))
    client = make_client(emu)
    assert client.messages.batches.list().data == []
    with pytest.raises(anthropic.InternalServerError):
        client.messages.batches.create(requests=[request("a")])


def test_sdk_retries_through_seeded_faults(make_emu: Any, make_client: Any) -> None:
    patterns = []
    for _ in range(2):
        emu = make_emu(http_529_rate=0.5, seed=9)
        client = make_client(emu)
        outcome = []
        for _ in range(20):
            try:
                client.messages.batches.list()
                outcome.append("ok")
            except anthropic.OverloadedError:
                outcome.append("529")
        patterns.append(outcome)
    assert patterns[0] == patterns[1] and "ok" in patterns[0] and "529" in patterns[0]
    emu = make_emu(http_529_rate=0.5, seed=9)
    retrying = make_client(emu, max_retries=10)
    retrying.messages.batches.list()  # the SDK retries 529s until one gets through


def test_fresh_404_on_a_just_created_batch(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(fresh_404_seconds=600.0, processing_seconds=1.0)
    client = make_client(emu)
    batch = client.messages.batches.create(requests=[request("a")])
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    with httpx2.Client(base_url=emu.base_url) as h:
        r = h.get(f"/v1/messages/batches/{batch.id}/results", headers={"x-api-key": "k"})
        assert r.status_code == 404
    assert [b.id for b in client.messages.batches.list()] == [batch.id]  # list still shows it
    emu.advance(601)
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    assert [r.custom_id for r in client.messages.batches.results(batch.id)] == ["a"]


def test_fresh_404_in_real_seconds(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(fresh_404_seconds=0.3, fresh_404_real_time=True, clock_speed=1e6)
    client = make_client(emu)
    batch = client.messages.batches.create(requests=[request("a")])
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)
    time.sleep(0.35)
    assert client.messages.batches.retrieve(batch.id).id == batch.id


def test_added_latency(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(latency_real_seconds=0.3)
    client = make_client(emu)
    start = time.monotonic()
    client.messages.batches.list()
    assert time.monotonic() - start >= 0.3
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.batches.list(timeout=0.1)


def test_results_stream_cut_after_n_lines(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(results_cut_after=3)
    client = make_client(emu)
    batch = wait_ended(client, client.messages.batches.create(requests=[request(f"r{i}") for i in range(600)]).id)
    got = []
    with pytest.raises((httpx2.RemoteProtocolError, anthropic.APIConnectionError)):
        for r in client.messages.batches.results(batch.id):
            got.append(r.custom_id)
    assert 1 <= len(got) <= 3  # the SDK may drop a buffered tail when the connection breaks
    with httpx2.Client() as h, h.stream("GET", batch.results_url, headers={"x-api-key": "k"}) as r:
        body = b""
        with pytest.raises(httpx2.RemoteProtocolError):
            for chunk in r.iter_bytes():
                body += chunk
    assert body.count(b"\n") == 3
    emu.set_faults(results_cut_after=None)
    assert len(list(client.messages.batches.results(batch.id))) == 600


def test_rpm_limit(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(rpm_limit=3)
    client = make_client(emu)
    for _ in range(3):
        client.messages.batches.list()
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.batches.list()
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
    assert emu.books()["http_faults"]["rpm_limit"] == 1


def test_queue_limit(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(queue_limit=5, processing_seconds=100.0)
    client = make_client(emu)
    first = client.messages.batches.create(requests=[request(f"r{i}") for i in range(3)])
    with pytest.raises(anthropic.RateLimitError) as info:
        client.messages.batches.create(requests=[request(f"s{i}") for i in range(3)])
    assert "retry-after" in info.value.response.headers
    assert client.messages.batches.create(requests=[request(f"s{i}") for i in range(2)])
    emu.advance(101)
    assert client.messages.batches.retrieve(first.id).processing_status == "ended"
    assert client.messages.batches.create(requests=[request(f"t{i}") for i in range(5)])


def test_spend_limit_switch(make_emu: Any, make_client: Any, schemas: Schemas) -> None:
    emu = make_emu()
    client = make_client(emu)
    emu.set_faults(spend_limit_reached=True)
    with pytest.raises(anthropic.EnforcedSpendLimitReachedError) as info:
        client.messages.batches.create(requests=[request("a")])
    err = info.value
    assert isinstance(err, anthropic.RateLimitError) and err.status_code == 429
    assert err.error_code == "enforced_spend_limit_reached"
    assert "retry-after" not in err.response.headers
    schemas.validate("ErrorResponse", err.body)
    with httpx2.Client(base_url=emu.base_url) as h:
        assert h.post("/_emulator/faults", json={"spend_limit_reached": False}).status_code == 200
    assert client.messages.batches.create(requests=[request("a")]).id


def test_control_api_and_books(emu: Any, client: Any, http: httpx2.Client) -> None:
    faults = http.get("/_emulator/faults").json()
    assert faults["http_429_rate"] == 0.0 and faults["max_body_bytes"] == 256_000_000
    changed = http.post("/_emulator/faults", json={"http_429_rate": 0.5, "error_rates": {"api_error": 0.1}})
    assert changed.json()["http_429_rate"] == 0.5 and emu.config.error_rates == {"api_error": 0.1}
    assert http.post("/_emulator/faults", json={"no_such": 1}).status_code == 400
    assert http.post("/_emulator/faults", json={"expire_rate": 2}).status_code == 400
    emu.set_faults(http_429_rate=0.0, error_rates={})

    a = client.messages.batches.create(requests=[request("x"), request("y")])
    b = client.messages.batches.create(requests=[request("x"), request("z")])
    wait_ended(client, a.id)
    wait_ended(client, b.id)
    list(client.messages.batches.results(a.id))
    books = http.get("/_emulator/books").json()
    assert books == emu.books()
    assert books["batches_created"] == 2 and books["requests_created"] == 4
    assert books["requests_in_multiple_batches"] == 1 and books["multi_batch_ids"] == ["x"]
    assert books["results"]["succeeded"] == 4 and books["billed_requests"] == 4
    assert books["results_served"]["succeeded"] == 2 and books["results_downloads"] == 1
    client.messages.batches.delete(a.id)
    assert emu.books()["billed_requests"] == 4  # deleting keeps the books
    http.post("/_emulator/reset")
    books = emu.books()
    assert books["batches_created"] == 0 and books["multi_batch_ids"] == []
    assert client.messages.batches.list().data == []
    emu.reset()
