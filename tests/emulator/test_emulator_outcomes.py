"""Replies derived from each request, usage, prompt markers, seeded outcome rates, result order."""

from __future__ import annotations

import math
from typing import Any

import httpx2
from emulator_helpers import Schemas, download, request, wait_ended

from batchline.emulator import reply_text
from batchline.emulator.replies import prompt_size

HOUR = 3600.0


def results_by_id(client: Any, batch_id: str) -> dict[str, Any]:
    return {r.custom_id: r.result for r in client.messages.batches.results(batch_id)}


def test_reply_text_is_pure_and_distinct() -> None:
    a = request("a", "one")["params"]
    assert reply_text(a) == reply_text(dict(reversed(list(a.items()))))
    assert reply_text(a) != reply_text(request("a", "two")["params"])
    assert reply_text(a).startswith("Reply ") and len(reply_text(a)) == 22


def test_every_caller_gets_its_own_reply_and_plausible_usage(client: Any) -> None:
    reqs = [request(f"r{i}", "word " * (i * 20 + 1), max_tokens=1 + i % 3) for i in range(30)]
    batch = client.messages.batches.create(requests=reqs)
    wait_ended(client, batch.id)
    got = results_by_id(client, batch.id)
    ids = set()
    for r in reqs:
        message = got[r["custom_id"]].message
        ids.add(message.id)
        assert message.id.startswith("msg_") and message.role == "assistant"
        assert message.stop_reason == "end_turn"
        assert message.content[0].text == reply_text(r["params"])
        chars = len(r["params"]["messages"][0]["content"])
        assert message.usage.input_tokens == max(1, math.ceil(chars / 4))
        assert 1 <= message.usage.output_tokens <= r["params"]["max_tokens"]
        assert message.usage.cache_read_input_tokens == 0
    assert len(ids) == len(reqs)


def test_cache_control_first_write_then_reads(client: Any) -> None:
    system = [{"type": "text", "text": "shared context " * 100, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    reqs = [request(f"c{i}", f"question {i}", system=system) for i in range(3)]
    cached = prompt_size(reqs[0]["params"]).cache_tokens
    assert cached == math.ceil(len(system[0]["text"]) / 4)
    first = client.messages.batches.create(requests=reqs)
    second = client.messages.batches.create(requests=[request("later", "q", system=system)])
    wait_ended(client, second.id)
    got = results_by_id(client, first.id)
    writes = [got[f"c{i}"].message.usage for i in range(3)]
    assert writes[0].cache_creation_input_tokens == cached and writes[0].cache_read_input_tokens == 0
    assert writes[0].cache_creation.ephemeral_1h_input_tokens == cached
    for usage in writes[1:]:
        assert usage.cache_read_input_tokens == cached and usage.cache_creation_input_tokens == 0
    later = results_by_id(client, second.id)["later"].message.usage
    assert later.cache_read_input_tokens == cached


def test_prompt_markers(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(processing_seconds=(10.0, 500.0))
    client = make_client(emu)
    reqs = [
        request("plain"),
        request("overloaded", "hi [[emulator:error=overloaded_error]]"),
        request("api", "x", system=[{"type": "text", "text": "[[emulator:error=api_error]]"}]),
        {
            "custom_id": "blocks",
            "params": {
                "model": "claude-sonnet-4-6",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": [{"type": "text", "text": "[[emulator:expire]]"}]}],
            },
        },
    ]
    batch = client.messages.batches.create(requests=reqs)
    slow = client.messages.batches.create(requests=[request("s", "[[emulator:slow]] please")])
    emu.advance(501)
    slow_done = client.messages.batches.retrieve(slow.id)
    assert (slow_done.ended_at - slow_done.created_at).total_seconds() == 500.0
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"  # an expiring one
    emu.advance(24 * HOUR)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.ended_at == ended.expires_at
    got = results_by_id(client, batch.id)
    assert got["plain"].type == "succeeded"
    assert got["overloaded"].type == "errored" and got["overloaded"].error.error.type == "overloaded_error"
    assert got["api"].error.error.type == "api_error"
    assert got["blocks"].type == "expired"


def run_rates(make_emu: Any, make_client: Any, seed: int) -> dict[str, str]:
    emu = make_emu(seed=seed, error_rates={"overloaded_error": 0.2, "api_error": 0.1}, expire_rate=0.1)
    client = make_client(emu)
    batch = client.messages.batches.create(requests=[request(f"r{i}", f"t{i}") for i in range(300)])
    emu.advance(24 * HOUR)
    out = {}
    for cid, result in results_by_id(client, batch.id).items():
        out[cid] = result.error.error.type if result.type == "errored" else result.type
    return out


def test_outcome_rates_are_seeded_and_reproducible(make_emu: Any, make_client: Any) -> None:
    a = run_rates(make_emu, make_client, seed=5)
    assert a == run_rates(make_emu, make_client, seed=5)
    assert a != run_rates(make_emu, make_client, seed=6)
    values = list(a.values())
    assert 30 < values.count("overloaded_error") < 90
    assert 10 < values.count("api_error") < 50
    assert 10 < values.count("expired") < 50
    assert values.count("succeeded") > 130


def test_resubmitted_request_gets_a_fresh_draw(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(error_rates={"overloaded_error": 0.5}, seed=3)
    client = make_client(emu)
    reqs = [request(f"r{i}") for i in range(40)]
    first = client.messages.batches.create(requests=reqs)
    second = client.messages.batches.create(requests=reqs)
    wait_ended(client, second.id)
    a = {k: v.type for k, v in results_by_id(client, first.id).items()}
    b = {k: v.type for k, v in results_by_id(client, second.id).items()}
    assert a != b  # the attempt number is part of the seed, so a retry can succeed


def test_result_order_shuffled_stable_and_crlf(make_emu: Any, make_client: Any, schemas: Schemas) -> None:
    for crlf in (False, True):
        emu = make_emu(crlf=crlf)
        client = make_client(emu)
        reqs = [request(f"r{i:03d}") for i in range(100)]
        ended = wait_ended(client, client.messages.batches.create(requests=reqs).id)
        with httpx2.Client() as h:
            raw1, lines1 = download(h, ended.results_url)
            raw2, _ = download(h, ended.results_url)
        assert raw1 == raw2
        order = [line["custom_id"] for line in lines1]
        assert sorted(order) == [r["custom_id"] for r in reqs] and order != sorted(order)
        assert raw1.endswith(b"\r\n" if crlf else b"}\n")
        assert raw1.count(b"\r\n") == (100 if crlf else 0)
        for line in lines1:
            schemas.validate("MessageBatchIndividualResponse", line)
