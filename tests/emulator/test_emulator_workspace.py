"""A busy, shared workspace and a misbehaving API, observed through the SDK: foreign batches, short
list pages, relative and unreachable results URLs, results 404, a create that answers 500 after creating."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urljoin

import anthropic
import httpx2
import pytest
from emulator_helpers import download, request, wait_ended


def test_foreign_batches_from_the_control_api(emu: Any, client: anthropic.Anthropic, http: httpx2.Client) -> None:
    ours = client.messages.batches.create(requests=[request("ours-1"), request("ours-2")])
    made = http.post("/_emulator/foreign", json={"batches": 3, "requests": 2}).json()["batch_ids"]
    assert len(made) == 3 and ours.id not in made
    listed = [b.id for b in client.messages.batches.list(limit=10).data]
    assert listed == [*reversed(made), ours.id]  # newest first, all in one workspace
    ended = wait_ended(client, made[0])
    assert ended.request_counts.succeeded == 2
    _, lines = download(http, str(ended.results_url))
    ids = {line["custom_id"] for line in lines}
    assert len(ids) == 2 and all(len(i) == 24 and int(i, 16) >= 0 for i in ids)  # look like anyone's ids
    client.messages.batches.delete(made[0])
    books = emu.books()
    assert books["batches_created"] == 1 and books["requests_created"] == 2  # the caller's own work only
    foreign = books["foreign"]
    assert foreign["batches_created"] == 3 and foreign["requests_created"] == 6
    assert foreign["results_downloads"] == 1 and foreign["deleted"] == 1 and foreign["canceled"] == 0
    assert foreign["batch_ids"] == made
    bad = http.post("/_emulator/foreign", json={"batches": 1, "requests": 0})
    assert bad.status_code == 400 and "requests" in bad.json()["error"]


def test_foreign_generator_makes_batches_of_exactly_n(emu: Any, client: anthropic.Anthropic) -> None:
    emu.set_faults(foreign_batch_requests=7, foreign_every_real_seconds=0.2)
    client.messages.batches.list(limit=1)  # the schedule starts with the first call
    time.sleep(0.7)
    listed = client.messages.batches.list(limit=100).data
    assert len(listed) >= 3
    assert all(b.request_counts.processing + b.request_counts.succeeded == 7 for b in listed)
    emu.set_faults(foreign_batch_requests=0)
    client.messages.batches.list(limit=1)
    made = emu.books()["foreign"]["batches_created"]
    time.sleep(0.4)
    client.messages.batches.list(limit=1)
    assert emu.books()["foreign"]["batches_created"] == made  # off means off


def test_short_list_pages_still_page_through_everything(
    emu: Any, client: anthropic.Anthropic, http: httpx2.Client
) -> None:
    made = http.post("/_emulator/foreign", json={"batches": 25, "requests": 1}).json()["batch_ids"]
    emu.set_faults(list_page_max=4)
    page = client.messages.batches.list(limit=1000)
    assert len(page.data) == 4 and page.has_more
    assert [b.id for b in client.messages.batches.list(limit=1000)] == list(reversed(made))  # auto-paging
    seen, after = [], None
    while True:
        page = client.messages.batches.list(limit=1000, after_id=after or anthropic.omit)
        seen += [b.id for b in page.data]
        if not page.has_more:
            break
        after = page.last_id
    assert seen == list(reversed(made))


def test_create_answers_500_after_creating(emu: Any, client: anthropic.Anthropic) -> None:
    emu.set_faults(create_lost_reply_rate=1.0)
    with pytest.raises(anthropic.InternalServerError):
        client.messages.batches.create(requests=[request("a"), request("b")])
    listed = client.messages.batches.list().data
    assert len(listed) == 1 and listed[0].request_counts.processing == 2  # the batch exists all the same
    books = emu.books()
    assert books["batches_created"] == 1 and books["http_faults"]["create_lost_reply"] == 1


def test_create_fails_before_creating(emu: Any, client: anthropic.Anthropic) -> None:
    emu.set_faults(http_500_rate=1.0, fault_operations=["create"])
    with pytest.raises(anthropic.InternalServerError):
        client.messages.batches.create(requests=[request("a")])
    assert client.messages.batches.list().data == []
    assert emu.books()["batches_created"] == 0


def test_relative_results_url_under_a_mount_path(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(results_url_mode="relative", mount_path="/anthropic")
    base = emu.base_url + "/anthropic"
    client = make_client(emu, base_url=base)
    batch = client.messages.batches.create(requests=[request("a")])
    ended = wait_ended(client, batch.id)
    assert ended.results_url == f"/anthropic/v1/messages/batches/{batch.id}/results"
    with pytest.raises(anthropic.NotFoundError):  # the SDK joins it onto the base URL's path
        list(client.messages.batches.results(batch.id))
    with httpx2.Client(timeout=10) as h:  # RFC 3986 resolution reaches it
        _, lines = download(h, urljoin(base, ended.results_url))
    assert [line["custom_id"] for line in lines] == ["a"]


def test_absolute_url_keeps_the_mount_and_unreachable_names_another_host(make_emu: Any, make_client: Any) -> None:
    emu = make_emu(mount_path="/anthropic")
    client = make_client(emu, base_url=emu.base_url + "/anthropic")
    batch = client.messages.batches.create(requests=[request("a")])
    ended = wait_ended(client, batch.id)
    assert ended.results_url == f"{emu.base_url}/anthropic/v1/messages/batches/{batch.id}/results"
    assert [r.custom_id for r in client.messages.batches.results(batch.id)] == ["a"]
    emu.set_faults(results_url_mode="unreachable")
    url = str(client.messages.batches.retrieve(batch.id).results_url)
    assert url.startswith("http://results.unreachable.invalid/anthropic/") and emu.base_url not in url


def test_results_404_mode(emu: Any, client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=[request("a")])
    wait_ended(client, batch.id)
    emu.set_faults(results_404=True)
    with pytest.raises(anthropic.NotFoundError):
        list(client.messages.batches.results(batch.id))
    assert emu.books()["http_faults"]["results_404"] == 1
    emu.set_faults(results_404=False)
    assert [r.custom_id for r in client.messages.batches.results(batch.id)] == ["a"]


def test_new_settings_are_validated(emu: Any) -> None:
    for bad in (
        {"list_page_max": 0},
        {"results_url_mode": "odd"},
        {"mount_path": "x/"},
        {"create_lost_reply_rate": 2.0},
        {"foreign_every_real_seconds": 0},
    ):
        with pytest.raises(ValueError):
            emu.set_faults(**bad)
