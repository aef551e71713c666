"""The gateway as a real `batchline gateway` process in front of real workers and beat, driven by the
official SDK (sync and async): a worker SIGKILLed mid-delivery changes nothing the clients see."""

from __future__ import annotations

import asyncio
from collections import Counter

import anthropic
import pytest

from batchline.config.settings import Settings
from batchline.emulator import reply_text
from batchline.keys import Keys
from batchline.local_services import free_port, wait_for_port
from batchline.redis_client import connect
from batchline.tenants import Tenant, TenantStore
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e


def params(i: int, tenant: str) -> dict:
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": f"Summarise item {i} for {tenant}."}],
    }


def test_gateway_clients_see_exactly_their_results_through_a_worker_crash(e2e_env, emulator, processes):
    env = {
        **e2e_env,
        "BATCHLINE_TEST_CRASH_AT": "mid_delivery",
        "BATCHLINE_MAX_BATCH_REQUESTS": "300",
        "BATCHLINE_RESULTS_CHUNK_LINES": "100",
    }
    settings = Settings.from_env(env)
    client = connect(settings.redis_url, settings.key_prefix)
    store = TenantStore(client, Keys(settings.key_prefix))
    keys = {t: store.add(Tenant(t)) for t in ("alpha", "beta")}
    port = free_port()
    gateway = processes(["gateway", "--port", str(port)], env)
    wait_for_port(port, proc=gateway.proc)
    base = f"http://127.0.0.1:{port}"
    worker = processes(["worker", "--role", "all", "--concurrency", "2"], env)
    beat = processes(["beat"], env)

    n = 250
    alpha = anthropic.Anthropic(base_url=base, api_key=keys["alpha"], max_retries=0)
    a = alpha.messages.batches.create(
        requests=[{"custom_id": f"doc-{i}", "params": params(i, "alpha")} for i in range(n)]
    )

    async def beta_flow() -> tuple[str, list]:
        async with anthropic.AsyncAnthropic(base_url=base, api_key=keys["beta"], max_retries=0) as beta:
            b = await beta.messages.batches.create(
                requests=[{"custom_id": f"doc-{i}", "params": params(i, "beta")} for i in range(n)]
            )
            for _ in range(600):
                got = await beta.messages.batches.retrieve(b.id)
                if got.processing_status == "ended":
                    break
                await asyncio.sleep(0.2)
            assert got.request_counts.succeeded == n, got.request_counts
            with pytest.raises(anthropic.NotFoundError):
                await beta.messages.batches.retrieve(a.id)
            return b.id, [r async for r in await beta.messages.batches.results(b.id)]

    b_id, beta_lines = asyncio.run(beta_flow())
    wait_for(
        lambda: alpha.messages.batches.retrieve(a.id).processing_status == "ended",
        120,
        "alpha ended",
        [worker, beat, gateway],
    )
    assert client.exists(f"{settings.key_prefix}:crashed:mid_delivery")
    ended = alpha.messages.batches.retrieve(a.id)
    assert ended.request_counts.succeeded == n and ended.request_counts.processing == 0
    alpha_lines = list(alpha.messages.batches.results(a.id))
    for tenant, lines in (("alpha", alpha_lines), ("beta", beta_lines)):
        ids = Counter(r.custom_id for r in lines)
        assert len(ids) == n and max(ids.values()) == 1, f"{tenant}: lost or doubled"
        for r in lines:
            assert r.result.message.content[0].text == reply_text(params(int(r.custom_id[4:]), tenant))
    assert emulator.books()["requests_in_multiple_batches"] == 0
    with pytest.raises(anthropic.NotFoundError):
        alpha.messages.batches.retrieve(b_id)
    for proc in (gateway, worker, beat):
        assert keys["alpha"] not in proc.log() and keys["beta"] not in proc.log()
    client.close()
