"""Lifecycle from the emulated clock: processing, cancel, 24 h expiry, 29-day archive."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import anthropic
import httpx2
import pytest
from emulator_helpers import Schemas, download, request, wait_ended

HOUR = 3600.0
DAY = 24 * HOUR


def test_counts_stay_processing_until_the_end(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(processing_seconds=0.6)
    client = make_client(emu)
    batch = client.messages.batches.create(requests=[request(f"r{i}") for i in range(10)])
    time.sleep(0.3)
    mid = client.messages.batches.retrieve(batch.id)
    assert mid.processing_status == "in_progress"
    assert mid.request_counts.processing == 10 and mid.request_counts.succeeded == 0
    ended = wait_ended(client, batch.id)
    assert ended.request_counts.processing == 0 and ended.request_counts.succeeded == 10
    assert ended.ended_at - ended.created_at == timedelta(seconds=0.6)
    assert ended.expires_at - ended.created_at == timedelta(hours=24)


def test_processing_range_is_seeded_per_batch(make_emu: Any, make_client: Any) -> None:
    durations = []
    for _ in range(2):
        emu = make_emu(processing_seconds=(100.0, 5000.0), seed=11)
        client = make_client(emu)
        ids = [client.messages.batches.create(requests=[request("a")]).id for _ in range(3)]
        emu.advance(6000)
        durations.append([(lambda b: b.ended_at - b.created_at)(client.messages.batches.retrieve(i)) for i in ids])
    assert durations[0] == durations[1]
    assert len(set(durations[0])) == 3
    assert all(timedelta(seconds=100) <= d <= timedelta(seconds=5000) for d in durations[0])


def test_clock_speed_lives_through_a_day(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(processing_seconds=23 * HOUR, clock_speed=23 * HOUR / 0.3)
    client = make_client(emu)
    batch = client.messages.batches.create(requests=[request("a")])
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    ended = wait_ended(client, batch.id, timeout=5)
    assert ended.ended_at - ended.created_at == timedelta(hours=23)


def test_cancel_then_canceled_requests(make_emu: Any, make_client: Any, schemas: Schemas) -> None:
    emu = make_emu(processing_seconds=1000.0, cancel_seconds=0.3)
    client = make_client(emu)
    batch = client.messages.batches.create(requests=[request(f"r{i}") for i in range(50)])
    emu.advance(500)  # about half the requests are done by now
    raw = client.messages.batches.with_raw_response.cancel(batch.id).http_response.json()
    schemas.validate("MessageBatch", raw)
    assert raw["processing_status"] == "canceling" and raw["cancel_initiated_at"] is not None
    assert raw["request_counts"]["processing"] == 50
    again = client.messages.batches.cancel(batch.id)  # canceling twice is harmless
    assert again.cancel_initiated_at == client.messages.batches.retrieve(batch.id).cancel_initiated_at
    ended = wait_ended(client, batch.id)
    counts = ended.request_counts
    assert ended.ended_at - ended.cancel_initiated_at == timedelta(seconds=0.3)
    assert counts.canceled > 0 and counts.succeeded > 0
    assert counts.canceled + counts.succeeded == 50
    types = [r.result.type for r in client.messages.batches.results(batch.id)]
    assert types.count("canceled") == counts.canceled


def test_unfinished_requests_expire_after_24h(make_emu: Any, make_client: Any, http: Any, schemas: Schemas) -> None:
    emu = make_emu(processing_seconds=48 * HOUR)
    client = make_client(emu)
    batch = client.messages.batches.create(requests=[request(f"r{i}") for i in range(40)])
    emu.advance(DAY - 10)
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    emu.advance(20)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended" and ended.ended_at == ended.expires_at
    assert ended.request_counts.expired > 0 and ended.request_counts.succeeded > 0
    with httpx2.Client() as h:
        _, lines = download(h, ended.results_url)
    for line in lines:
        schemas.validate("MessageBatchIndividualResponse", line)
    assert sum(line["result"]["type"] == "expired" for line in lines) == ended.request_counts.expired


def test_results_archived_after_29_days(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(processing_seconds=10.0)
    client = make_client(emu)
    batch = client.messages.batches.create(requests=[request("a")])
    emu.advance(29 * DAY - 60)
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.archived_at is None
    assert [r.custom_id for r in client.messages.batches.results(batch.id)] == ["a"]
    emu.advance(120)
    archived = client.messages.batches.retrieve(batch.id)
    assert archived.archived_at - archived.created_at == timedelta(days=29)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.results(batch.id)
