"""Deadline requests through the pipeline's plain functions, against the emulator over HTTP with the
official SDK and a real Redis: routed real-time before packing, hedged after, delivered exactly once."""

from __future__ import annotations

import json

import httpx2 as httpx
import pytest

from batchline import cli
from batchline.fields import R
from batchline.keys import REALTIME_BATCH, Keys, request_id
from batchline.producers.producer import Producer
from batchline.reports import cost_rows
from batchline.workers import aggregator, deadlines, poller, realtime, results
from batchline.workers.context import Context
from tests.integration.pipeline import drain, entries


def params(text: str) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": text}]}


@pytest.fixture
def dl_settings(pipeline_settings):
    return pipeline_settings.replace(
        min_deadline_seconds=0.0, batch_turnaround_seconds=3600.0, deadline_margin_seconds=60.0
    )


def books(emulator) -> dict:
    return httpx.get(f"{emulator.base_url}/_emulator/books").json()


def test_deadline_nearer_than_turnaround_goes_realtime_and_is_delivered_once(dl_settings, redis_client, emulator):
    producer = Producer.from_settings(dl_settings)
    producer.submit("soon", params("soon"), deadline_seconds=600, reply_to="redis-stream:out")
    producer.submit("later", params("later"), deadline_seconds=7200, reply_to="redis-stream:out")
    producer.submit("plain", params("plain"), reply_to="redis-stream:out")
    ctx = Context(dl_settings)
    routed = deadlines.tick(ctx)
    assert (routed.calls, routed.realtime, routed.batch) == ([request_id("default", "soon")], 1, 1)
    # taken out of the queue: the pack that follows carries the two others only
    created = aggregator.pack(ctx)
    assert sum(c.requests for c in created) == 2
    assert realtime.answer(ctx, routed.calls[0]).status == "delivered"
    assert realtime.answer(ctx, routed.calls[0]).status == "settled"  # a second try does nothing
    drain(ctx)
    out = entries(redis_client, "out")  # raises on a second delivery
    assert set(out) == {"soon", "later", "plain"}
    assert out["soon"]["batch_id"] == REALTIME_BATCH and out["later"]["batch_id"] != REALTIME_BATCH
    assert books(emulator)["realtime"]["messages"] == 1
    soon = producer.status("soon")
    assert soon["state"] == "delivered" and soon["path"] == "realtime" and soon["deadline_met"] is True
    assert "nearer than the expected batch turnaround 3600 s" in soon["path_reason"]
    assert producer.status("later")["path"] == "batch" and producer.status("plain")["path_reason"] == "no deadline"
    rows = {r.model: r for r in cost_rows(redis_client, Keys(dl_settings.key_prefix))}
    row = rows["claude-haiku-4-5"]
    assert row.realtime_requests == 1 and row.requests == 2
    assert row.realtime_usd == pytest.approx(soon["cost_usd"]) and row.realtime_usd > 0
    import boto3

    s3 = boto3.client("s3", endpoint_url=dl_settings.s3_endpoint_url, region_name="us-east-1")
    for cid, by in (("soon", "realtime"), ("later", "batch")):
        obj = json.loads(s3.get_object(Bucket=dl_settings.s3_bucket, Key=out[cid]["s3_key"])["Body"].read())
        assert obj["answered_by"] == by and obj["provider_line"]["result"]["type"] == "succeeded"
    # the batch's turnaround is now history for the model: the next routing uses its p95
    assert redis_client.llen(Keys(dl_settings.key_prefix).turnaround("claude-haiku-4-5")) >= 1
    producer.close()


def test_hedge_delivers_the_first_answer_and_counts_the_other_as_wasted(
    dl_settings, redis_client, emulator, monkeypatch, capsys
):
    httpx.post(f"{emulator.base_url}/_emulator/faults", json={"processing_seconds": 3600})  # slow batches
    producer = Producer.from_settings(dl_settings.replace(batch_turnaround_seconds=1.0))
    producer.submit("hedge", params("hedge"), deadline_seconds=30, reply_to="redis-stream:out")
    ctx = Context(dl_settings.replace(batch_turnaround_seconds=1.0))
    assert deadlines.route_new(ctx).batch == 1  # 30 s left, turnaround 1 s: left to its batch
    assert sum(c.requests for c in aggregator.pack(ctx)) == 1
    handed: list[str] = []
    poller.poll(ctx, handed.append)
    assert not handed  # still running
    hedged = deadlines.hedge(ctx)  # 30 s left < 60 s margin: sent real-time too
    assert hedged.hedged == 1 and hedged.calls == [request_id("default", "hedge")]
    assert realtime.answer(ctx, hedged.calls[0]).status == "delivered"
    # the batch ends later: its answer finds the request delivered and is recorded, not delivered
    httpx.post(f"{emulator.base_url}/_emulator/clock", json={"advance_seconds": 7200})
    ctx.redis.delete(ctx.keys.poll_lock())
    poller.poll(ctx, handed.append)
    assert handed
    report = results.collect(ctx, handed[0])
    assert report.skipped == 1 and report.delivered == 0
    assert list(entries(redis_client, "out")) == ["hedge"]
    status = producer.status("hedge")
    assert status["path"] == "hedged" and "BATCHLINE_DEADLINE_MARGIN_SECONDS" in status["path_reason"]
    rid = request_id("default", "hedge")
    wasted = int(redis_client.hget(ctx.keys.request(rid), R.WASTED))
    assert wasted > 0
    row = next(iter(cost_rows(redis_client, ctx.keys)))
    assert row.wasted_requests == 1 and row.wasted_usd == pytest.approx(wasted / 1e6)
    results.collect(ctx, handed[0])  # a replay counts nothing twice
    assert next(iter(cost_rows(redis_client, ctx.keys))).wasted_requests == 1
    # `batchline costs` per tenant: real-time spend, batch spend (none: the batch lost), wasted spend
    monkeypatch.setenv("BATCHLINE_REDIS_URL", dl_settings.redis_url)
    monkeypatch.setenv("BATCHLINE_KEY_PREFIX", dl_settings.key_prefix)
    capsys.readouterr()
    assert cli.main(["costs", "--by", "tenant", "--json"]) == 0
    (tenant_row,) = json.loads(capsys.readouterr().out)
    assert tenant_row["tenant"] == "default" and tenant_row["batch_usd"] == 0
    assert tenant_row["realtime_requests"] == 1 and tenant_row["realtime_usd"] == pytest.approx(status["cost_usd"])
    assert tenant_row["wasted_usd"] == pytest.approx(wasted / 1e6)
    # the batch's answer was priced at 50%: half the real-time one (the emulator answers both alike)
    assert tenant_row["wasted_usd"] == pytest.approx(tenant_row["realtime_usd"] / 2, rel=0.01)
    assert cli.main(["costs", "--by", "tenant"]) == 0
    assert "spent (real-time)" in capsys.readouterr().out
    producer.close()


def test_realtime_answer_after_the_batch_won_is_not_delivered(dl_settings, redis_client, emulator):
    producer = Producer.from_settings(dl_settings)
    producer.submit("late", params("late"), deadline_seconds=30, reply_to="redis-stream:out")
    ctx = Context(dl_settings.replace(batch_turnaround_seconds=1.0))
    deadlines.route_new(ctx)
    rid = request_id("default", "late")
    aggregator.pack(ctx)
    assert deadlines.hedge(ctx).hedged == 1
    drain(ctx)  # the batch answers first
    message = realtime.call(ctx.anthropic, params("late"), "")
    bid = redis_client.hget(ctx.keys.request(rid), R.BATCH).decode()
    assert realtime._settle(ctx, rid, bid, "default", message).status == "not_delivered"
    assert list(entries(redis_client, "out")) == ["late"]
    assert next(iter(cost_rows(redis_client, ctx.keys))).wasted_requests == 1
    producer.close()


def test_realtime_budget_spent_makes_deadline_requests_wait_and_reports_them_late(
    dl_settings, redis_client, emulator, monkeypatch, capsys
):
    monkeypatch.setenv("BATCHLINE_REDIS_URL", dl_settings.redis_url)
    monkeypatch.setenv("BATCHLINE_KEY_PREFIX", dl_settings.key_prefix)
    assert cli.main(["tenants", "add", "capped"]) == 0
    assert cli.main(["tenants", "set", "capped", "--realtime-budget-usd", "0.000001"]) == 0
    assert "realtime_budget_usd=1e-06" in capsys.readouterr().out
    producer = Producer.from_settings(dl_settings)
    ctx = Context(dl_settings)
    producer.submit("first", params("first"), tenant="capped", deadline_seconds=600, reply_to="redis-stream:out")
    routed = deadlines.route_new(ctx)
    assert routed.realtime == 1 and realtime.answer(ctx, routed.calls[0]).status == "delivered"
    # its spend is now past the budget: the next deadline request waits for its batch, flagged late
    producer.submit("second", params("second"), tenant="capped", deadline_seconds=600, reply_to="redis-stream:out")
    routed = deadlines.route_new(ctx)
    assert (routed.realtime, routed.late, routed.calls) == (0, 1, [])
    status = producer.status("second", tenant="capped")
    assert status["path"] == "batch" and "real-time budget is $0.00" in status["path_reason"]
    assert status["late_reason"].startswith("tenant's real-time budget spent")
    drain(ctx)
    assert set(entries(redis_client, "out")) == {"first", "second"}
    assert producer.status("second", tenant="capped")["state"] == "delivered"
    capsys.readouterr()  # the workers' log lines
    assert cli.main(["costs", "--by", "tenant", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["tenant"], row["deadline_late"], row["realtime_requests"], row["requests"]) == ("capped", 1, 1, 1)
    assert cli.main(["costs"]) == 0
    assert "capped: 1" in capsys.readouterr().out
    producer.close()


def test_a_realtime_call_carries_the_request_betas(dl_settings, redis_client, emulator):
    producer = Producer.from_settings(dl_settings)
    producer.submit(
        "beta", params("beta"), deadline_seconds=600, betas=["output-300k-2026-03-24"], reply_to="redis-stream:out"
    )
    ctx = Context(dl_settings)
    (rid,) = deadlines.route_new(ctx).calls
    assert realtime.answer(ctx, rid).status == "delivered"
    assert books(emulator)["realtime_betas"] == {"output-300k-2026-03-24": 1}
    assert list(entries(redis_client, "out")) == ["beta"]
    producer.close()
