"""Batch-only rules (config/batch_rules.json) at intake: refused fields named, legal ones never refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchline.errors import InvalidRequest
from batchline.requests import batch_rules, check_params

BASE = {"model": "claude-sonnet-4-6", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}

LEGAL = {
    **BASE,
    "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
    "messages": [{"role": "user", "content": [
        {"type": "text", "text": "see", "cache_control": {"type": "ephemeral", "ttl": "5m"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "document", "source": {"type": "file", "file_id": "file_011"}, "citations": {"enabled": True}},
    ]}],
    "tools": [{"name": "lookup", "description": "d", "input_schema": {"type": "object"}},
              {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
              {"type": "code_execution_20250825", "name": "code_execution"}],
    "tool_choice": {"type": "auto"},
    "thinking": {"type": "enabled", "budget_tokens": 512},
    "output_format": {"type": "json_schema", "schema": {"type": "object"}},
    "cache_control": {"type": "ephemeral", "ttl": "1h"},
    "container": "container_011",
    "service_tier": "auto",
    "metadata": {"user_id": "u-1"},
    "inference_geo": "us",
    "stream": False,
    "speed": "standard",
    "temperature": 0.2,
    "some_field_of_2027": {"anything": [1, 2, 3]},
}


def test_legal_fields_are_never_refused():
    check_params(LEGAL)


@pytest.mark.parametrize(("extra", "field"), [
    ({"stream": True}, "params.stream"),
    ({"speed": "fast"}, "params.speed"),
    ({"betas": ["output-300k-2026-03-24"]}, "params.betas"),
    ({"betas": []}, "params.betas"),
    ({"max_tokens": 0}, "params.max_tokens"),
])
def test_refused_fields_are_named_with_their_rule(extra, field):
    with pytest.raises(InvalidRequest) as err:
        check_params({**BASE, **extra})
    assert err.value.field == field and err.value.rule


def test_rules_are_data_with_their_source():
    data = json.loads(Path(__file__).parents[2].joinpath("config/batch_rules.json").read_text())
    assert data["_source"]["as_of"] and "batch-processing" in data["_source"]["docs"]
    assert {r.field for r in batch_rules()} == {r["field"] for r in data["refused"]}
