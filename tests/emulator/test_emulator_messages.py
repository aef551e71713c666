"""`POST /v1/messages` through the official SDK: the same reply a batch gives the same params, at
standard price, with the batch endpoints' faults and a clear error for bad params."""

from __future__ import annotations

import anthropic
import pytest
from emulator_helpers import request, wait_ended


def params(text: str = "hello") -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}


def test_a_real_time_answer_matches_the_batch_answer_at_standard_tier(emu, client):
    message = client.messages.create(**params("what is 2+2"))
    assert message.type == "message" and message.usage.service_tier == "standard"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    batch = client.messages.batches.create(requests=[request("b-1", "what is 2+2", max_tokens=64)])
    wait_ended(client, batch.id)
    line = next(iter(client.messages.batches.results(batch.id)))
    assert line.result.type == "succeeded"
    assert line.result.message.content[0].text == message.content[0].text
    assert line.result.message.usage.service_tier == "batch"
    books = emu.books()
    assert books["realtime"] == {"messages": 1, "input_tokens": message.usage.input_tokens,
                                 "output_tokens": message.usage.output_tokens}
    assert books["operations"]["messages"] == 1 and books["requests_created"] == 1


def test_faults_apply_to_real_time_calls_too(emu, client):
    emu.set_faults(http_429_rate=1.0, fault_operations=("messages",), retry_after_seconds=7)
    with pytest.raises(anthropic.RateLimitError) as err:
        client.messages.create(**params())
    assert err.value.response.headers["retry-after"] == "7"
    client.messages.batches.list()  # other operations are not targeted
    assert emu.books()["realtime"]["messages"] == 0


@pytest.mark.parametrize(("body", "rule"), [
    ({**params(), "messages": []}, "messages: at least one message is required"),
    ({**params(), "max_tokens": 0}, "max_tokens: Input should be an integer greater than or equal to 1"),
    ({**params(), "model": "gpt-4"}, "model: 'gpt-4' is not a known model"),
])
def test_bad_params_are_a_400_naming_the_field(emu, client, body, rule):
    with pytest.raises(anthropic.BadRequestError) as err:
        client.messages.create(**body)
    assert rule in str(err.value)
    assert emu.books()["realtime"]["messages"] == 0


def test_slow_batches_by_control_while_real_time_answers_at_once(emu, client):
    """What the deadline tests lean on: `processing_seconds` set at run time (POST /_emulator/faults)
    slows the batches created from then on; `/v1/messages` still answers at once."""
    import httpx2

    httpx2.post(f"{emu.base_url}/_emulator/faults", json={"processing_seconds": 3600}).raise_for_status()
    batch = client.messages.batches.create(requests=[request("slow-1", "slow")])
    assert client.messages.create(**params("slow")).type == "message"
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    emu.advance(3599)
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    emu.advance(2)
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
