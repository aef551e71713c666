"""Fixtures for the emulator tests: an emulator factory, SDK clients, the official schemas."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import pytest
from emulator_helpers import Schemas

from batchline.emulator import EmulatorConfig, EmulatorHandle, run_in_thread


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    return Schemas()


@pytest.fixture
def make_emu() -> Iterator[Callable[..., EmulatorHandle]]:
    """``make_emu(**config)`` starts an emulator that is stopped when the test ends."""
    started: list[EmulatorHandle] = []

    def make(**changes: Any) -> EmulatorHandle:
        changes.setdefault("processing_seconds", 0.2)
        emu = run_in_thread(EmulatorConfig(**changes))
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture(scope="session")
def shared_emu() -> Iterator[EmulatorHandle]:
    with run_in_thread(EmulatorConfig(processing_seconds=0.2)) as emu:
        yield emu


@pytest.fixture
def emu(shared_emu: EmulatorHandle) -> EmulatorHandle:
    """One emulator for the session, reset to defaults (processing 0.2 s) before each test."""
    defaults = EmulatorConfig(processing_seconds=0.2).to_json()
    for key in ("host", "port"):
        defaults.pop(key)
    shared_emu.set_faults(**defaults)
    shared_emu.reset()
    return shared_emu


@pytest.fixture
def make_client() -> Iterator[Callable[[EmulatorHandle], anthropic.Anthropic]]:
    clients: list[anthropic.Anthropic] = []

    def make(emu: EmulatorHandle, **kwargs: Any) -> anthropic.Anthropic:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("base_url", emu.base_url)
        client = anthropic.Anthropic(api_key="test", **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(emu: EmulatorHandle, make_client: Callable[..., anthropic.Anthropic]) -> anthropic.Anthropic:
    return make_client(emu)


@pytest.fixture
def http(emu: EmulatorHandle) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=emu.base_url, timeout=30) as c:
        yield c
