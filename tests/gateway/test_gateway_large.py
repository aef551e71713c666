"""A client batch of documents through the gateway and the official SDK: its requests are kept by
reference in S3 (the claim check), delivered as any other."""

from __future__ import annotations

import hashlib

import anthropic
import pytest

from batchline.fields import R
from batchline.gateway.batches import prefix_of
from batchline.keys import Keys, request_id
from batchline.workers.context import Context
from tests.integration.pipeline import drain

N, DOC = 200, 1_000_000  # the client batch: a 200 MB create body through the SDK


def doc(i: int) -> dict:
    blob = (hashlib.sha256(str(i).encode()).hexdigest() * (DOC // 64 + 1))[:DOC]
    content = [{"type": "text", "text": blob}, {"type": "text", "text": f"extract {i}"}]
    return {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": content}]}


@pytest.mark.slow  # ~25 s on 2 cores: in `make test`, not in `make test-fast`
def test_a_client_batch_of_documents_is_kept_in_s3_and_delivered(rig):
    rig.add("docs")
    client = anthropic.Anthropic(base_url=rig.base_url, api_key=rig.keys["docs"], max_retries=0, timeout=120)
    batch = client.messages.batches.create(requests=[{"custom_id": f"d-{i}", "params": doc(i)} for i in range(N)])
    assert batch.request_counts.processing == N
    ctx = Context(rig.settings)
    rid = request_id("docs", f"{prefix_of(batch.id)}0")
    stored = ctx.redis.hget(Keys(rig.settings.key_prefix).request(rid), R.PARAMS)
    assert stored is not None and stored.startswith(b"@") and len(stored) < 200  # a pointer, not the document
    drain(ctx, timeout=240)
    done = client.messages.batches.retrieve(batch.id)
    assert done.processing_status == "ended" and done.request_counts.succeeded == N
    lines = list(client.messages.batches.results(batch.id))
    assert sorted(r.custom_id for r in lines) == sorted(f"d-{i}" for i in range(N))
    assert {r.result.type for r in lines} == {"succeeded"}
