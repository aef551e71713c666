"""Deadlines through real processes: `batchline worker` and `batchline beat` against the emulator over
HTTP, its batches made slow (20 s). 200 requests, 10% with deadlines shorter than a batch takes: half
nearer than the expected turnaround (real-time at once), half left to their batch and hedged when it
runs late. Each deadline request is delivered before its deadline, every other one by its batch, and
every request exactly once."""

from __future__ import annotations

from collections import Counter

import httpx2 as httpx
import pytest

from batchline.config.settings import Settings
from batchline.keys import REALTIME_BATCH
from batchline.producers.producer import Producer
from batchline.reports import cost_rows
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e
N, SOON, HEDGED = 200, 10, 10
BATCH_SECONDS = 20


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": f"item {i}"}]}


def item(i: int) -> dict:
    out: dict = {"custom_id": f"r-{i}", "params": params(i)}
    if i < SOON:
        out["deadline_seconds"] = 10  # nearer than the expected turnaround (15 s): real-time at once
    elif i < SOON + HEDGED:
        out["deadline_seconds"] = 40  # after it: batched, hedged 25 s before its deadline
    return out


def test_deadline_requests_beat_a_slow_batch_and_the_rest_go_by_batch(e2e_env, emulator, processes):
    httpx.post(f"{emulator.base_url}/_emulator/faults", json={"processing_seconds": BATCH_SECONDS})
    env = {
        **e2e_env,
        "BATCHLINE_MIN_DEADLINE_SECONDS": "5",
        "BATCHLINE_BATCH_TURNAROUND_SECONDS": "15",
        "BATCHLINE_DEADLINE_MARGIN_SECONDS": "25",
    }
    worker = processes(["worker", "--role", "all", "--concurrency", "2"], env)
    beat = processes(["beat"], env)
    # deadlines count from submission: submit to a running pipeline, not to processes still starting
    wait_for(
        lambda: " ready." in worker.log() and "beat: Starting" in beat.log(), 60, "worker and beat up", [worker, beat]
    )
    producer = Producer.from_settings(Settings.from_env(env))
    report = producer.submit_many((item(i) for i in range(N)), tenant="acme", reply_to="redis-stream:out")
    assert report.accepted == N
    client, keys = producer.redis, producer.keys

    def settled() -> bool:  # every reply in, and the slow batch collected (its answers to hedged requests too)
        return client.xlen("out") >= N and not client.zcard(keys.open) and not client.zcard(keys.ended)

    wait_for(settled, 120, lambda: f"{client.xlen('out')} of {N} replies", [worker, beat])
    seen: Counter[str] = Counter()
    batch_of: dict[str, str] = {}
    for _, raw in client.xrange("out"):
        f = {k.decode(): v.decode() for k, v in raw.items()}
        seen[f["custom_id"]] += 1
        batch_of[f["custom_id"]] = f["batch_id"]
    assert len(seen) == N and max(seen.values()) == 1, [c for c, n in seen.items() if n > 1]
    paths = Counter()
    for i in range(N):
        status = producer.status(f"r-{i}", tenant="acme")
        assert status["state"] == "delivered" and status["outcome"] == "succeeded"
        paths[status["path"]] += 1
        if i < SOON + HEDGED:
            assert status["deadline_met"], (
                i,
                status["path"],
                status.get("late_seconds"),
                status["queued_at"],
                status["deadline"],
                status["delivered_at"],
                status["history"],
            )
        if i < SOON:
            assert status["path"] == "realtime" and batch_of[f"r-{i}"] == REALTIME_BATCH
        elif i < SOON + HEDGED:
            assert status["path"] == "hedged"
        else:
            assert status["path"] == "batch" and batch_of[f"r-{i}"] != REALTIME_BATCH
    assert paths == {"batch": N - SOON - HEDGED, "realtime": SOON, "hedged": HEDGED}
    books = emulator.books()
    assert books["realtime"]["messages"] == SOON + HEDGED
    assert books["requests_created"] == N - SOON  # real-time ones never reached a batch
    (row,) = cost_rows(client, keys)
    assert row.realtime_requests + row.requests == N
    # the hedged requests' batch answers came back after their real-time ones: recorded, not delivered
    assert row.wasted_requests == HEDGED and row.wasted_usd > 0
    for proc in (worker, beat):
        assert "sk-e2e-secret-key" not in proc.log()
    producer.close()
