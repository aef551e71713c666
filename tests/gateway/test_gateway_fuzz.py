"""An API fuzz test generated from the OpenAPI description the gateway serves (schemathesis):
no 5xx, every error in Anthropic's shape, nothing of a refused request stored."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2 as httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from batchline.gateway.openapi import document
from batchline.keys import Keys
from batchline.pending import count as pending_count
from tests.gateway.conftest import GatewayRig, start_rig


@pytest.fixture
def fuzz_rig(settings_for_fuzz) -> Iterator[GatewayRig]:
    yield from start_rig(settings_for_fuzz)


@pytest.fixture
def settings_for_fuzz(settings):
    return settings.replace(gateway_rate_limit=1_000_000, max_batch_bytes=1_000_000)


# The description the gateway serves, built once at collection (schemathesis' lazy fixture loader does not
# run under this pytest); each test checks that the live gateway serves this same document.
SERVERS_URL = "http://gateway.invalid"
schema = schemathesis.openapi.from_dict(document(SERVERS_URL))


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: schemathesis.SerializationContext, value: object) -> dict[str, object]:
    """JSON Lines bodies of /v1/requests: one JSON value per line (a string body goes as it is)."""
    if isinstance(value, (str, bytes)):
        return {"data": value.encode() if isinstance(value, str) else value}
    items = value if isinstance(value, list) else [value]
    return {"data": b"\n".join(json.dumps(v).encode() for v in items)}


def stored(rig: GatewayRig) -> tuple[int, dict[bytes, bytes]]:
    keys = Keys(rig.settings.key_prefix)
    return pending_count(rig.store.redis, keys), rig.store.redis.hgetall(keys.counters)


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzz_no_5xx_errors_in_the_api_shape_nothing_stored_when_refused(case, fuzz_rig):
    if "fuzz" not in fuzz_rig.keys:
        fuzz_rig.add("fuzz")
        served = httpx.get(f"{fuzz_rig.base_url}/openapi.json").json()
        assert served["paths"] == document(SERVERS_URL)["paths"]
    before = stored(fuzz_rig)
    response = case.call(base_url=fuzz_rig.base_url, headers={"x-api-key": fuzz_rig.keys["fuzz"]}, timeout=30)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["type"] == "error", body
        assert isinstance(body["error"]["type"], str) and isinstance(body["error"]["message"], str), body
        if case.method == "POST":
            assert stored(fuzz_rig) == before, "a refused request left something behind"
