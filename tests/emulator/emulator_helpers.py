"""Helpers shared by the emulator tests: the official schemas and request builders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "message-batches.openapi.json"
SPEC_URI = "urn:anthropic:message-batches-openapi"


class Schemas:
    """Validate JSON against ``#/components/schemas/<Name>`` of the vendored OpenAPI spec."""

    def __init__(self) -> None:
        spec = json.loads(SPEC_PATH.read_text())
        resource = DRAFT202012.create_resource(spec)
        self.registry: Registry = Registry().with_resource(SPEC_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}

    def validate(self, name: str, instance: Any) -> None:
        if name not in self._validators:
            ref = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
            self._validators[name] = Draft202012Validator(ref, registry=self.registry)
        self._validators[name].validate(instance)


def request(custom_id: str, text: str = "hello", **params: Any) -> dict[str, Any]:
    """One batch request item with a small valid params body."""
    body: dict[str, Any] = {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
    }
    body.update(params)
    return {"custom_id": custom_id, "params": body}


def wait_ended(client: Any, batch_id: str, timeout: float = 10.0) -> Any:
    """Poll ``retrieve`` until the batch has ended; return it."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} did not end in {timeout}s")
        time.sleep(0.05)


def download(http: Any, url: str) -> tuple[bytes, list[dict[str, Any]]]:
    """GET a results file with an API key; return the raw body and the decoded lines."""
    response = http.get(url, headers={"x-api-key": "test"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-jsonl")
    raw = response.content
    lines = [json.loads(line.rstrip(b"\r")) for line in raw.split(b"\n") if line]
    return raw, lines
