"""The gateway's own surface over plain HTTP: /v1/requests, limits, error shape, OpenAPI, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx2 as httpx
import pytest

from batchline.emulator import reply_text
from batchline.keys import Keys
from batchline.pending import count as pending_count
from batchline.workers.context import Context
from tests.gateway.conftest import params, start_rig
from tests.integration.pipeline import drain


def h(rig, tenant: str = "alpha") -> dict[str, str]:
    return {"x-api-key": rig.keys[tenant]}


def test_single_requests_submit_status_result_and_cancel(rig):
    rig.add("alpha", reply_to=("redis-stream:alpha-*",))
    rig.add("beta")
    items = [
        {"custom_id": "one", "params": params(1, "alpha")},
        {"custom_id": "two", "params": params(2, "alpha"), "reply_to": "redis-stream:alpha-out"},
        {"custom_id": "bad", "params": {"model": "m"}},
        {"custom_id": "elsewhere", "params": params(3, "alpha"), "reply_to": "redis-stream:beta-out"},
        {"custom_id": "spoof", "params": params(4, "alpha"), "tenant": "beta"},
        {
            "custom_id": "gw",
            "params": params(5, "alpha"),
            "reply_to": f"redis-stream:{Keys(rig.settings.key_prefix).gateway_results('msgbatch_' + '0' * 24)}",
        },
    ]
    resp = httpx.post(f"{rig.base_url}/v1/requests", headers=h(rig), json=items)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["accepted"] == 2 and report["duplicate"] == 0
    assert [(r["index"], r["field"]) for r in report["rejected"]] == [
        (2, "params.max_tokens"),
        (3, "reply_to"),
        (4, "tenant"),
        (5, "reply_to"),
    ]
    jsonl = "\n".join(json.dumps(i) for i in items[:1]) + "\n"
    again = httpx.post(
        f"{rig.base_url}/v1/requests", headers={**h(rig), "content-type": "application/x-ndjson"}, content=jsonl
    ).json()
    assert again["duplicate"] == 1 and again["accepted"] == 0
    assert httpx.get(f"{rig.base_url}/v1/requests/one", headers=h(rig)).json()["state"] == "queued"
    assert httpx.get(f"{rig.base_url}/v1/requests/one", headers=h(rig, "beta")).status_code == 404
    assert httpx.get(f"{rig.base_url}/v1/requests/nope", headers=h(rig)).status_code == 404

    drain(Context(rig.settings))
    status = httpx.get(f"{rig.base_url}/v1/requests/one", headers=h(rig)).json()
    assert status["state"] == "delivered" and status["outcome"] == "succeeded" and status["history"]
    assert status["result"]["message"]["content"][0]["text"] == reply_text(params(1, "alpha"))
    assert rig.store.redis.xlen("alpha-out") == 1  # the allowed reply target got its outcome

    httpx.post(f"{rig.base_url}/v1/requests", headers=h(rig), json={"custom_id": "later", "params": params(9, "alpha")})
    gone = httpx.delete(f"{rig.base_url}/v1/requests/later", headers=h(rig))
    assert gone.json() == {"custom_id": "later", "cancel": "removed"}
    assert httpx.delete(f"{rig.base_url}/v1/requests/later", headers=h(rig, "beta")).status_code == 404
    assert httpx.get(f"{rig.base_url}/v1/requests/later", headers=h(rig)).json()["state"] == "canceling"
    drain(Context(rig.settings))  # a worker's sweep delivers its one `canceled`
    later = httpx.get(f"{rig.base_url}/v1/requests/later", headers=h(rig)).json()
    assert later["state"] == "delivered" and later["outcome"] == "canceled"


@pytest.fixture
def tight(pipeline_settings):
    yield from start_rig(
        pipeline_settings.replace(gateway_rate_limit=3, gateway_rate_window_seconds=3600, gateway_max_body_bytes=2048)
    )


def test_body_limit_is_413_and_rate_limit_is_429_with_retry_after(tight):
    tight.add("alpha")
    tight.add("beta")
    body = json.dumps({"requests": [{"custom_id": "a", "params": params(0, "a")}] * 40})
    resp = httpx.post(f"{tight.base_url}/v1/messages/batches", headers=h(tight), content=body)
    assert resp.status_code == 413 and resp.json()["error"]["type"] == "request_too_large"

    def chunks():  # no content-length: counted as it arrives
        for _ in range(10):
            yield b" " * 1000

    resp = httpx.post(f"{tight.base_url}/v1/requests", headers=h(tight), content=chunks())
    assert resp.status_code == 413
    assert httpx.get(f"{tight.base_url}/v1/messages/batches", headers=h(tight)).status_code == 200  # the 3rd
    resp = httpx.get(f"{tight.base_url}/v1/messages/batches", headers=h(tight))
    assert resp.status_code == 429 and resp.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(resp.headers["retry-after"]) <= 3600
    assert httpx.get(f"{tight.base_url}/v1/messages/batches", headers=h(tight, "beta")).status_code == 200  # per key
    assert pending_count(tight.store.redis, Keys(tight.settings.key_prefix)) == 0


def test_unknown_routes_methods_and_betas_answer_in_the_api_shape(rig):
    rig.add("alpha")
    for method, path, status in (
        ("GET", "/v1/nope", 404),
        ("PUT", "/v1/messages/batches", 405),
        ("GET", "/v1/messages/batches/not-an-id", 404),
    ):
        resp = httpx.request(method, f"{rig.base_url}{path}", headers=h(rig))
        assert resp.status_code == status
        assert resp.json()["type"] == "error" and resp.json()["error"]["message"]
    resp = httpx.post(
        f"{rig.base_url}/v1/messages/batches",
        headers={**h(rig), "anthropic-beta": "message-batches-2024-09-24,no spaces/allowed"},
        json={"requests": [{"custom_id": "a", "params": params(0, "a")}]},
    )
    assert resp.status_code == 400 and resp.json()["error"]["type"] == "invalid_request_error"
    assert resp.json()["error"]["message"].startswith("anthropic-beta:")
    assert "no spaces/allowed" in resp.json()["error"]["message"]
    doc = httpx.get(f"{rig.base_url}/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/v1/messages/batches/{batch_id}/results" in doc["paths"]
    assert [p["name"] for p in doc["paths"]["/v1/messages/batches"]["post"]["parameters"]] == ["anthropic-beta"]
    assert httpx.get(f"{rig.base_url}/readyz").status_code == 200


def run_cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"BATCHLINE_REDIS_URL": settings.redis_url, "BATCHLINE_KEY_PREFIX": settings.key_prefix, "PATH": ""}
    return subprocess.run(
        [sys.executable, "-m", "batchline.cli", "tenants", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_tenants_cli_prints_the_key_alone_on_the_last_line_and_stores_only_its_hash(rig):
    out = run_cli(rig.settings, "add", "svc", "--max-queued", "5", "--reply-to", "redis-stream:svc-*")
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("blk_") and " " not in key
    listed = run_cli(rig.settings, "list", "--json")
    assert key not in listed.stdout
    (svc,) = json.loads(listed.stdout)
    assert svc["max_queued"] == 5 and svc["reply_to"] == ["redis-stream:svc-*"] and len(svc["keys"]) == 1
    assert rig.store.authenticate(key).name == "svc"
    assert run_cli(rig.settings, "add", "svc").returncode == 2  # exists
    assert run_cli(rig.settings, "set", "svc", "--unlimited", "max-queued", "--weight", "3").returncode == 0
    assert rig.store.get("svc").max_queued is None and rig.store.get("svc").weight == 3
    rotated = run_cli(rig.settings, "rotate", "svc").stdout.strip().splitlines()[-1]
    assert rig.store.authenticate(rotated).name == "svc" and rig.store.authenticate(key).name == "svc"
    assert run_cli(rig.settings, "revoke", "svc").returncode == 0
    assert rig.store.authenticate(rotated) is None and rig.store.authenticate(key) is None
    bad = run_cli(rig.settings, "add", "bad name")
    assert bad.returncode == 2 and "tenant" in bad.stderr


@pytest.fixture
def impatient(pipeline_settings):
    yield from start_rig(pipeline_settings.replace(gateway_body_timeout_seconds=0.5))


def test_a_body_sent_too_slowly_is_408_and_stores_nothing(impatient):
    import time

    impatient.add("alpha")

    def trickle():
        yield b'{"custom_id": "slow", '
        time.sleep(1.5)
        yield b'"params": {}}'

    resp = httpx.post(f"{impatient.base_url}/v1/requests", headers=h(impatient), content=trickle(), timeout=10)
    assert resp.status_code == 408 and resp.json()["error"]["type"] == "timeout_error"
    assert pending_count(impatient.store.redis, Keys(impatient.settings.key_prefix)) == 0
    assert httpx.get(f"{impatient.base_url}/v1/requests/slow", headers=h(impatient)).status_code == 404


@pytest.fixture
def guarded(pipeline_settings):
    yield from start_rig(pipeline_settings.replace(gateway_auth_failure_limit=3, gateway_rate_window_seconds=3600))


@pytest.fixture
def proxied(pipeline_settings):
    yield from start_rig(
        pipeline_settings.replace(
            gateway_auth_failure_limit=3, gateway_rate_window_seconds=3600, gateway_trusted_proxy_hops=1
        )
    )


def _gateway_keys(rig) -> set[bytes]:
    return set(rig.store.redis.scan_iter(match=f"{rig.settings.key_prefix}:gw:*", count=1000))


def test_guessing_keys_is_throttled_per_address_and_costs_one_counter(guarded):
    key = guarded.add("alpha")
    url = f"{guarded.base_url}/v1/messages/batches"
    assert httpx.get(url, headers={"x-api-key": key}).status_code == 200
    before = _gateway_keys(guarded)
    for i in range(3):  # every guess a new random key, and a forged X-Forwarded-For (not trusted here)
        resp = httpx.get(url, headers={"x-api-key": f"sk-guess-{i}", "x-forwarded-for": f"10.0.0.{i}"})
        assert resp.status_code == 401 and resp.json()["error"]["type"] == "authentication_error"
    added = _gateway_keys(guarded) - before
    assert len(added) == 1 and b":gw:authfail:" in next(iter(added))  # not one key per guess
    resp = httpx.get(url, headers={"x-api-key": "sk-guess-4", "x-forwarded-for": "10.0.0.9"})
    assert resp.status_code == 429 and resp.json()["error"]["type"] == "rate_limit_error"
    assert "failed authentications" in resp.json()["error"]["message"]
    assert 1 <= int(resp.headers["retry-after"]) <= 3600
    # a right guess from the throttled address looks the same as a wrong one
    resp = httpx.get(url, headers={"x-api-key": key})
    assert resp.status_code == 429 and key not in resp.text
    # no key at all is not a guess: the address's count did not move, and the answer is still 429
    assert httpx.get(url).status_code == 429
    assert _gateway_keys(guarded) - before == added


def test_trusted_proxy_hop_separates_addresses(proxied):
    key = proxied.add("alpha")
    url = f"{proxied.base_url}/v1/messages/batches"

    def get(xff: str, api_key: str) -> int:
        return httpx.get(url, headers={"x-api-key": api_key, "x-forwarded-for": xff}).status_code

    # the client forges the left entries; the ingress appends the address it saw, which is what counts
    assert [get(f"1.1.1.{i}, 192.0.2.7", "sk-wrong") for i in range(4)] == [401, 401, 401, 429]
    assert get("192.0.2.7", key) == 429
    assert get("192.0.2.8", key) == 200  # another client behind the same ingress is unaffected
    assert get("192.0.2.7, 192.0.2.8", key) == 200
