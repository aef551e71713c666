"""Large requests kept by reference (claim check): moto S3 over HTTP, real Redis, the emulator over HTTP."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from contextlib import redirect_stderr

import boto3
import orjson
import pytest

from batchline.errors import Backpressure, InvalidRequest, RetryableError
from batchline.fields import R
from batchline.keys import request_id
from batchline.objects import MemoryStore, S3Store
from batchline.producers import submit_cli
from batchline.producers.producer import Producer
from batchline.workers import aggregator, params_gc, sweeper
from batchline.workers.context import Context
from tests.integration.pipeline import drain, entries

INLINE_MAX = 4096


def doc(i: int, size: int = 20_000) -> dict:
    """A request whose params are a ~`size`-byte document (base64-like text) and a question."""
    blob = (hashlib.sha256(str(i).encode()).hexdigest() * (size // 64 + 1))[:size]
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 32,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": blob}, {"type": "text", "text": f"question {i}"}]}
        ],
    }


@pytest.fixture
def large(pipeline_settings):
    return pipeline_settings.replace(inline_max_bytes=INLINE_MAX, s3_prefix="pfx")


def s3(settings):
    return boto3.client("s3", endpoint_url=settings.s3_endpoint_url, region_name="us-east-1")


def params_objects(settings) -> list[str]:
    listed = s3(settings).list_objects_v2(Bucket=settings.s3_bucket, Prefix="pfx/params/")
    return [o["Key"] for o in listed.get("Contents", [])]


def test_large_params_are_stored_once_by_digest_and_redis_keeps_the_key(large, redis_client):
    producer = Producer.from_settings(large)
    assert producer.submit("a", doc(1)) == "accepted"
    assert producer.submit("b", doc(1)) == "accepted"  # the same document: one object
    assert (
        producer.submit("small", {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]})
        == "accepted"
    )
    encoded = json.dumps(doc(1), separators=(",", ":"), ensure_ascii=False).encode()
    key = f"pfx/params/{hashlib.sha256(producer.encode_request('a', doc(1), None, None, None).params_json).hexdigest()}"
    assert params_objects(large) == [key]
    body = s3(large).get_object(Bucket=large.s3_bucket, Key=key)["Body"].read()
    assert json.loads(body) == json.loads(encoded)
    k = producer.keys
    rec = redis_client.hgetall(k.request(request_id("default", "a")))
    assert rec[R.PARAMS.encode()] == b"@" + key.encode()
    assert int(rec[R.SIZE.encode()]) > len(body)  # the real size: quotas and fair share count it
    small = redis_client.hget(k.request(request_id("default", "small")), R.PARAMS)
    assert small is not None and small.startswith(b"{")
    # idempotency and conflicts compare the full params
    assert producer.submit("a", doc(1)) == "duplicate"
    with pytest.raises(InvalidRequest, match="custom_id"):
        producer.submit("a", doc(2))
    assert int(redis_client.hget(k.stats, "pending_bytes") or 0) > 2 * len(body)
    assert producer.status("a")["state"] == "queued"


def test_over_inline_size_without_a_store_is_refused_naming_the_setting(settings, redis_client):
    producer = Producer.from_settings(settings.replace(inline_max_bytes=INLINE_MAX))
    with pytest.raises(InvalidRequest) as err:
        producer.submit("a", doc(1))
    assert err.value.field == "params"
    assert "BATCHLINE_INLINE_MAX_BYTES" in err.value.rule and "BATCHLINE_S3_BUCKET" in err.value.rule
    report = producer.submit_many([{"custom_id": "x", "params": doc(2)}, {"custom_id": "y", "params": doc(3, 100)}])
    assert report.accepted == 1 and [r.field for r in report.rejected] == ["params"]
    assert redis_client.exists(producer.keys.request(request_id("default", "a"))) == 0


def test_store_unreachable_at_intake_is_retryable_and_nothing_is_in_redis(large, redis_client):
    down = large.replace(s3_endpoint_url="http://127.0.0.1:9")
    producer = Producer.from_settings(down)
    with pytest.raises(RetryableError, match=f"object store s3://{large.s3_bucket}"):
        producer.submit("a", doc(1))
    with pytest.raises(RetryableError):
        producer.submit_many([{"custom_id": "s", "params": doc(5, 100)}, {"custom_id": "b", "params": doc(6)}])
    assert (
        redis_client.exists(
            producer.keys.request(request_id("default", "a")),
            producer.keys.request(request_id("default", "b")),
            producer.keys.request(request_id("default", "s")),
        )
        == 0
    )
    assert int(redis_client.hget(producer.keys.stats, "pending") or 0) == 0


def test_submit_cli_prints_one_line_and_exits_3_when_the_store_is_down(large, redis_client, tmp_path, monkeypatch):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({"custom_id": "a", "params": doc(1)}) + "\n")
    env = {
        "BATCHLINE_REDIS_URL": large.redis_url,
        "BATCHLINE_KEY_PREFIX": large.key_prefix,
        "BATCHLINE_S3_BUCKET": large.s3_bucket,
        "BATCHLINE_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "BATCHLINE_INLINE_MAX_BYTES": str(INLINE_MAX),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    parser = submit_cli.argparse.ArgumentParser()
    submit_cli.add_arguments(parser)
    err = io.StringIO()
    with redirect_stderr(err):
        code = submit_cli.run(parser.parse_args([str(path), "--no-progress"]))
    assert code == 3
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and f"s3://{large.s3_bucket}" in lines[0]


def test_large_requests_end_to_end_through_the_streamed_create(large, redis_client, emulator):
    producer = Producer.from_settings(large)
    items = [{"custom_id": f"d-{i}", "params": doc(i)} for i in range(30)]
    items += [{"custom_id": f"s-{i}", "params": doc(i, 200)} for i in range(30)]
    assert producer.submit_many(items, reply_to="redis-stream:out").accepted == 60
    drain(Context(large))
    got = entries(redis_client, "out")
    assert len(got) == 60 and {g["outcome"] for g in got.values()} == {"succeeded"}
    books = emulator.books()
    assert books["requests_created"] == 60 and books["requests_in_multiple_batches"] == 0


def test_missing_param_object_errors_that_request_and_the_rest_go_on(large, redis_client, emulator):
    producer = Producer.from_settings(large)
    items = [{"custom_id": f"d-{i}", "params": doc(i)} for i in range(6)]
    assert producer.submit_many(items, reply_to="redis-stream:out").accepted == 6
    gone = redis_client.hget(producer.keys.request(request_id("default", "d-2")), R.PARAMS)
    assert gone is not None
    s3(large).delete_object(Bucket=large.s3_bucket, Key=gone[1:].decode())  # deleted by hand
    drain(Context(large))
    got = entries(redis_client, "out")
    assert len(got) == 6
    assert got["d-2"]["outcome"] == "errored"
    assert producer.status("d-2")["error_type"] == "params_unavailable"
    assert {got[f"d-{i}"]["outcome"] for i in (0, 1, 3, 4, 5)} == {"succeeded"}
    assert emulator.books()["requests_created"] == 5


class FlakyStore(S3Store):
    """The real store, whose first object read fails halfway through the body."""

    def __init__(self, real: S3Store) -> None:
        super().__init__(real.client, real.bucket)
        self.faults = 1

    def read(self, key: str) -> Iterator[bytes]:
        if self.faults:
            self.faults -= 1
            raise RetryableError(f"object store {self.name} unavailable ({key}): injected")
        yield from super().read(key)


def test_store_fault_during_streamed_create_is_retried_without_a_second_batch(large, redis_client, emulator):
    producer = Producer.from_settings(large)
    items = [{"custom_id": f"s-{i}", "params": doc(i, 100)} for i in range(3)]
    items += [{"custom_id": f"d-{i}", "params": doc(i)} for i in range(4)]
    assert producer.submit_many(items, reply_to="redis-stream:out").accepted == 7
    ctx = Context(large)
    flaky = FlakyStore(ctx.params_store)
    ctx.__dict__["params_store"] = flaky
    drain(ctx)
    assert flaky.faults == 0
    got = entries(redis_client, "out")
    assert len(got) == 7 and {g["outcome"] for g in got.values()} == {"succeeded"}
    books = emulator.books()
    assert books["batches_created"] == 1 and books["requests_created"] == 7


def test_param_objects_are_deleted_once_no_pending_request_refers_to_them(large, redis_client, emulator):
    s = large.replace(params_gc_grace_seconds=0.0)
    producer = Producer.from_settings(s)
    assert producer.submit("a", doc(1), reply_to="redis-stream:out") == "accepted"
    assert producer.submit("b", doc(1), reply_to="redis-stream:out") == "accepted"  # same object
    assert producer.submit("c", doc(2), reply_to="redis-stream:out") == "accepted"
    assert len(params_objects(s)) == 2
    ctx = Context(s)
    assert producer.cancel("a") == "removed"
    sweeper.sweep(ctx, lambda bid: None)  # a's `canceled` delivered: b still refers to the object
    assert len(params_objects(s)) == 2
    assert (
        int(redis_client.hget(ctx.keys.params_refs, params_objects(s)[0]) or 0)
        + int(redis_client.hget(ctx.keys.params_refs, params_objects(s)[1]) or 0)
        == 2
    )
    drain(ctx)
    sweeper.sweep(ctx, lambda bid: None)
    assert len(entries(redis_client, "out")) == 3
    assert params_objects(s) == []
    assert redis_client.hlen(ctx.keys.params_refs) == 0 and redis_client.zcard(ctx.keys.params_gc) == 0


def test_an_object_referred_to_again_before_its_grace_is_kept(large, redis_client, emulator):
    s = large.replace(params_gc_grace_seconds=3600.0)
    producer = Producer.from_settings(s)
    assert producer.submit("a", doc(1)) == "accepted"
    ctx = Context(s)
    drain(ctx)
    assert redis_client.zcard(ctx.keys.params_gc) == 1 and len(params_objects(s)) == 1
    assert params_gc.due(ctx, ctx.clock.now_ms()) == 0  # within its grace: kept
    assert producer.submit("again", doc(1)) == "accepted"  # the same document: off the list again
    assert redis_client.zcard(ctx.keys.params_gc) == 0
    assert params_gc.collect(ctx, ctx.clock.now_ms() + 7200_000) == 0
    assert len(params_objects(s)) == 1


def test_memory_admission_counts_what_redis_holds_not_the_document(large, redis_client):
    used = int(redis_client.info("memory")["used_memory"])
    old = redis_client.config_get("maxmemory")["maxmemory"]
    redis_client.config_set("maxmemory", used + 8_000_000)
    try:
        s = large.replace(intake_memory_percent=100)
        producer = Producer.from_settings(s)
        items = [{"custom_id": f"d-{i}", "params": doc(i, 200_000)} for i in range(100)]  # 20 MB of documents
        assert producer.submit_many(items).accepted == 100
        assert int(redis_client.hget(producer.keys.stats, "pending_bytes") or 0) > 20_000_000  # real sizes
        inline = Producer.from_settings(s.replace(inline_max_bytes=0))
        with pytest.raises(Backpressure) as refused:
            inline.submit_many([{"custom_id": f"i-{i}", "params": doc(i, 200_000)} for i in range(100)])
        assert refused.value.limit == "memory"
    finally:
        redis_client.config_set("maxmemory", old)


class DownStore(S3Store):
    """The real store, unreachable for HEAD (before the create)."""

    def exists(self, key: str) -> bool:
        raise RetryableError(f"object store {self.name} unavailable ({key}): injected")


def test_store_down_before_the_create_releases_the_claim_and_backs_off(large, redis_client, emulator):
    producer = Producer.from_settings(large)
    items = [{"custom_id": f"d-{i}", "params": doc(i)} for i in range(3)]
    assert producer.submit_many(items, reply_to="redis-stream:out").accepted == 3
    ctx = Context(large)
    real = ctx.params_store
    ctx.__dict__["params_store"] = DownStore(real.client, real.bucket)
    created = aggregator.pack_once(ctx)
    assert created is not None and created.outcome == "released" and created.provider_id is None
    assert redis_client.exists(ctx.keys.create_backoff) == 1
    assert int(redis_client.hget(ctx.keys.stats, "pending") or 0) == 3
    assert emulator.books()["batches_created"] == 0
    ctx.__dict__["params_store"] = real
    redis_client.delete(ctx.keys.create_backoff)
    drain(ctx)
    got = entries(redis_client, "out")
    assert len(got) == 3 and {g["outcome"] for g in got.values()} == {"succeeded"}


class FailingStore(MemoryStore):
    """Refuses the PUT of one document, as an unreachable store would."""

    def __init__(self, bad: bytes) -> None:
        super().__init__()
        self.bad = bad

    def put(self, key: str, data: bytes) -> None:
        if data == self.bad:
            raise RetryableError(f"object store memory unavailable ({key})")
        super().put(key, data)


def test_puts_run_ahead_of_intake_across_chunks_and_a_document_is_put_once_per_call(large, redis_client):
    store = MemoryStore()
    producer = Producer(redis_client, large, store)
    items = [{"custom_id": f"c{i}", "params": doc(i % 4)} for i in range(10)]  # 4 documents, chunks of 3
    assert producer.submit_many(items, chunk_size=3).accepted == 10
    assert store.puts == 4 and len(store.objects) == 4
    for i in range(10):
        stored = redis_client.hget(producer.keys.request(request_id("default", f"c{i}")), R.PARAMS)
        assert stored is not None and stored[1:].decode() in store.objects  # each reference is to a stored object
    producer.close()


def test_a_store_fault_in_a_later_chunk_stores_the_chunks_before_and_nothing_of_it(large, redis_client):
    bad = doc(7)
    store = FailingStore(orjson.dumps(bad, option=orjson.OPT_SORT_KEYS))
    producer = Producer(redis_client, large, store)
    with pytest.raises(RetryableError, match="object store memory"):
        producer.submit_many([{"custom_id": f"c{i}", "params": doc(i)} for i in range(12)], chunk_size=3)
    there = [redis_client.exists(producer.keys.request(request_id("default", f"c{i}"))) for i in range(12)]
    assert there[:6] == [1] * 6 and there[6:] == [0] * 6  # c7's chunk (6-8) stopped whole, and the rest
    assert int(redis_client.hget(producer.keys.stats, "pending") or 0) == sum(there)
    producer.close()
