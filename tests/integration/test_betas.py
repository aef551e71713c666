"""Betas per batch: packing never mixes beta sets; the create and the results read carry the
`anthropic-beta` header of exactly their requests' betas (checked in the emulator's books)."""

from __future__ import annotations

import io
import json

import pytest

from batchline.errors import Conflict, InvalidRequest
from batchline.keys import request_id
from batchline.producers.producer import Producer
from batchline.producers.submit_cli import submit_file
from batchline.workers import aggregator
from batchline.workers.context import Context
from batchline.workers.packing import Take
from tests.integration.pipeline import drain

OUT300K = "output-300k-2026-03-24"
SETS: list[list[str] | None] = [None, [OUT300K], ["mcp-client-2025-11-20", "context-management-2025-06-27"],
                                ["context-management-2025-06-27", "mcp-client-2025-11-20"], []]


def params(i: int) -> dict:
    return {"model": "claude-opus-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": f"b{i}"}]}


def test_each_provider_batch_carries_exactly_its_requests_betas(pipeline_settings, emulator):
    s = pipeline_settings.replace(s3_bucket=None)
    producer = Producer.from_settings(s)
    items = [{"custom_id": f"bt-{i}", "params": params(i), "betas": SETS[i % len(SETS)]} for i in range(40)]
    report = producer.submit_many(items, tenant="betas", reply_to="redis-stream:betas-out")
    assert report.accepted == 40 and not report.rejected
    drain(Context(s))
    books = emulator.books()
    provider_batches: set[str] = set()
    for item in items:
        st = producer.status(item["custom_id"], tenant="betas")
        assert st is not None and st["outcome"] == "succeeded"
        pid = st["provider_batch_id"]
        provider_batches.add(pid)
        expected = sorted(set(item["betas"] or []))
        assert books["batch_betas"].get(pid, []) == expected, item
        assert books["results_betas"].get(pid, []) == expected  # results read with the same header
    assert len(provider_batches) == 3  # none (None and []), the 300k beta, the two-beta set in either order


def test_the_claim_takes_one_beta_set_and_keeps_the_others_in_order(settings, redis_client):
    producer = Producer.from_settings(settings)
    order = [("a", [OUT300K]), ("b", None), ("c", [OUT300K]), ("d", ["x-1"]), ("e", None)]
    for cid, betas in order:
        assert producer.submit(cid, params(0), tenant="t", betas=betas) == "accepted"
    ctx = Context(settings.replace(anthropic_api_key="unused"))
    pending = [r.decode() for r in redis_client.lrange(ctx.keys.pending_of("t"), 0, -1)]
    bid, _, flat = aggregator.claim(ctx, Take(100, 10_000_000, "aged"))
    assert flat[0::2] == [pending[0].encode(), pending[2].encode()]  # a and c: the head's beta set
    assert redis_client.hget(ctx.keys.batch(bid), "betas") == OUT300K.encode()
    assert [r.decode() for r in redis_client.lrange(ctx.keys.pending_of("t"), 0, -1)] == [pending[1], pending[3], pending[4]]
    bid2, _, flat2 = aggregator.claim(ctx, Take(100, 10_000_000, "aged"))
    assert flat2[0::2] == [pending[1].encode(), pending[4].encode()] and not redis_client.hexists(ctx.keys.batch(bid2), "betas")


def test_betas_are_part_of_a_requests_identity_and_checked(settings, redis_client):
    producer = Producer.from_settings(settings)
    line = json.dumps({"custom_id": "from-file", "params": params(2), "betas": [OUT300K]})
    report, rejected = submit_file(producer, io.StringIO(line + "\n"), tenant="t", reply_to=None)
    assert report.accepted == 1 and not rejected
    assert redis_client.hget(producer.keys.request(request_id("t", "from-file")), "bt") == OUT300K.encode()
    assert producer.submit("same", params(1), tenant="t", betas=["b-1", "a-1"]) == "accepted"
    assert producer.submit("same", params(1), tenant="t", betas=["a-1", "b-1", "a-1"]) == "duplicate"  # same set
    with pytest.raises(Conflict):
        producer.submit("same", params(1), tenant="t")  # differs only in betas: another request
    assert producer.submit("plain", params(1), tenant="t") == "accepted"
    with pytest.raises(Conflict):
        producer.submit("plain", params(1), tenant="t", betas=[OUT300K])
    with pytest.raises(InvalidRequest) as err:
        producer.submit("bad", params(1), tenant="t", betas=OUT300K)  # a string, not a list
    assert err.value.field == "betas"
    with pytest.raises(InvalidRequest) as err:
        producer.submit("bad", params(1), tenant="t", betas=["ok", "no spaces"])
    assert err.value.field == "betas[1]"
    with pytest.raises(InvalidRequest) as err:
        producer.submit("bad", {**params(1), "betas": [OUT300K]}, tenant="t")
    assert err.value.field == "params.betas" and "beside params" in err.value.rule
    assert producer.status("bad", tenant="t") is None
