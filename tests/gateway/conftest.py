"""A gateway on a free port in this process, in front of the real Redis, emulator and moto S3."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from batchline.config.settings import Settings
from batchline.keys import Keys
from batchline.redis_client import connect
from batchline.tenants import Tenant, TenantStore


@dataclass
class GatewayRig:
    settings: Settings
    base_url: str
    store: TenantStore
    keys: dict[str, str]

    def add(self, name: str, **limits: object) -> str:
        key = self.store.add(Tenant(name, **limits))  # type: ignore[arg-type]
        self.keys[name] = key
        return key


def params(i: int, tenant: str) -> dict:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": f"question {i} from {tenant}"}],
    }


def start_rig(settings: Settings) -> Iterator[GatewayRig]:
    from batchline.gateway.server import run_in_thread

    client = connect(settings.redis_url, settings.key_prefix)
    store = TenantStore(client, Keys(settings.key_prefix), settings.key_grace_seconds)
    with run_in_thread(settings) as gw:
        yield GatewayRig(settings, gw.base_url, store, {})
    client.close()


@pytest.fixture
def rig(pipeline_settings) -> Iterator[GatewayRig]:
    yield from start_rig(pipeline_settings.replace(gateway_rate_limit=10_000))
