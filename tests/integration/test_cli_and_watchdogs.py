"""The submit file path (bad lines reported by line number, good ones stored) and the watchdogs."""

from __future__ import annotations

import io
import json

from batchline.clock import FakeClock
from batchline.producers.producer import Producer
from batchline.producers.submit_cli import submit_file
from batchline.reports import snapshot
from batchline.workers import aggregator, sweeper
from batchline.workers.context import Context


def line(cid: str, **extra) -> str:
    return json.dumps({"custom_id": cid, "params": {"model": "claude-haiku-4-5", "max_tokens": 8,
                                                    "messages": [{"role": "user", "content": cid}]}, **extra})


def test_submit_file_reports_bad_lines_and_keeps_good_ones(settings, redis_client):
    producer = Producer.from_settings(settings)
    text = "\n".join([
        line("a-1"),
        "{not json",
        line("a-2", tenant="other"),
        "[1, 2]",
        line("bad id"),
        "",
        line("a-3", reply_to="smtp:nope"),
        line("a-4", metadata={"k": "v"}),
        line("a-1"),  # duplicate of line 1
    ]) + "\n"
    report, rejected = submit_file(producer, io.StringIO(text), tenant="main", reply_to="redis-stream:x")
    assert report.accepted == 3 and report.duplicate == 1
    assert [(r.index, r.field) for r in rejected] == [(2, "line"), (4, "line"), (5, "custom_id"), (7, "reply_to")]
    assert "invalid JSON" in rejected[0].reason
    assert producer.status("a-2", tenant="other")["state"] == "queued"
    assert producer.status("a-3", tenant="main") is None  # refused whole: nothing stored


def test_watchdog_flags_a_batch_in_progress_too_long(pipeline_settings, redis_client, emulator):
    emulator.set_faults(processing_seconds=60.0)
    s = pipeline_settings.replace(stuck_batch_seconds=1.0, s3_bucket=None)
    Producer.from_settings(s).submit_many({"custom_id": f"w-{i}", "params": json.loads(line(f"w-{i}"))["params"]}
                                          for i in range(5))
    clock = FakeClock()
    ctx = Context(s, clock=clock)
    created = aggregator.pack(ctx)
    sweeper.sweep(ctx, lambda b: None)
    assert not redis_client.hgetall(ctx.keys.alerts)
    clock.advance(1.1)
    sweeper.sweep(ctx, lambda b: None)
    alerts = snapshot(redis_client, ctx.keys).alerts
    assert list(alerts) == [f"stuck:{created[0].batch_id}"]
    assert "in progress" in alerts[f"stuck:{created[0].batch_id}"]
