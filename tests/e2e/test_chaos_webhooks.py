"""Chaos rows for webhook reply targets: real `batchline worker` and `batchline beat` processes, the
emulator over HTTP, and real receivers on loopback that verify every signature. Webhooks are at least
once: a duplicate is allowed, but only with its first delivery's webhook-id; nothing may be lost."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
import redis

from batchline.config.settings import Settings
from batchline.keys import Keys
from batchline.local_services import free_port
from batchline.producers.producer import Producer
from batchline.tenants import WebhookSecrets
from batchline.webhook_receiver import Receiver
from tests.e2e.chaos import ChaosResult, params
from tests.e2e.conftest import wait_for
from tests.e2e.test_chaos import check_logs, start

pytestmark = pytest.mark.e2e
PER_TENANT = 1000
TENANTS = ("alpha", "beta")


@pytest.fixture
def hook_env(e2e_env):
    return {
        **e2e_env,
        "BATCHLINE_S3_BUCKET": "",
        "BATCHLINE_MAX_BATCH_REQUESTS": "500",
        "BATCHLINE_WEBHOOK_ALLOW_HTTP": "1",
        "BATCHLINE_WEBHOOK_ALLOW_PRIVATE": "127.0.0.1",
        "BATCHLINE_WEBHOOK_TIMEOUT_SECONDS": "2",
        "BATCHLINE_WEBHOOK_BACKOFF_MAX_SECONDS": "2",
        "BATCHLINE_DELIVERY_OUTBOX_SECONDS": "1",
    }


def secrets(env: dict[str, str]) -> dict[str, str]:
    client = redis.Redis.from_url(env["BATCHLINE_REDIS_URL"])
    store = WebhookSecrets(client, Keys(env["BATCHLINE_KEY_PREFIX"]))
    return {t: store.rotate(t) for t in TENANTS}


def submit(env: dict[str, str], urls: dict[str, str]) -> None:
    producer = Producer.from_settings(Settings.from_env(env))
    for tenant in TENANTS:
        report = producer.submit_many(
            ({"custom_id": f"{tenant}-{i}", "params": params(i, tenant)} for i in range(PER_TENANT)),
            tenant=tenant,
            reply_to=urls[tenant],
        )
        assert report.accepted == PER_TENANT, report.rejected
    producer.close()


def measure(fault: str, t0: float, receivers: list[Receiver], injected: dict[str, int]) -> ChaosResult:
    """Lost: submitted minus distinct 2xx'd; delivered twice: 2xx calls past each request's first."""
    ok: Counter[tuple[str, str]] = Counter()
    first_id: dict[tuple[str, str], str] = {}
    outcomes: Counter[str] = Counter()
    for rx in receivers:
        assert rx.bad_signatures == 0, f"{rx.bad_signatures} bad signatures"
        for call in rx.calls:
            key = (call.body["tenant"], call.body["custom_id"])
            first_id.setdefault(key, call.webhook_id)
            assert call.webhook_id == first_id[key], f"{key}: a resend with another webhook-id"
            if 200 <= call.status < 300:
                ok[key] += 1
                if ok[key] == 1:
                    outcomes[call.body["outcome"]] += 1
    submitted = PER_TENANT * len(TENANTS)
    return ChaosResult(
        fault=fault,
        submitted=submitted,
        delivered=len(ok),
        lost=submitted - len(ok),
        duplicated=sum(ok.values()) - len(ok),
        billed_twice=0,
        redriven=0,
        recover_seconds=time.monotonic() - t0,
        outcomes=dict(outcomes),
        faults=injected,
    )


def delivered(receivers: list[Receiver]) -> int:
    return sum(len(rx.delivered()) for rx in receivers)


@pytest.mark.parametrize("down", [pytest.param(60, marks=pytest.mark.chaos), 5])
def test_receiver_down_then_back(hook_env, emulator, processes, chaos_report, down):
    """The 60 s row runs in `make chaos`; `make test` has the same case with 5 s."""
    keys = secrets(hook_env)
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    procs = start(processes, hook_env)
    submit(hook_env, {t: url for t in TENANTS})
    t0 = time.monotonic()
    time.sleep(down)  # nothing listens: every send is refused, retried with backoff
    with Receiver(keys, port=port) as rx:
        wait_for(lambda: delivered([rx]) >= 2 * PER_TENANT, 180, "all webhooks after the receiver came back", procs)
        result = measure(f"webhook receiver down {down} s, then back", t0, [rx], {"receiver down (s)": down})
    chaos_report.append(result)
    check_logs(procs)
    for proc in procs:
        for secret in keys.values():
            assert secret not in proc.log(), "a webhook secret in the logs"
    assert result.lost == 0, result


def test_receiver_answering_500_on_30_percent(hook_env, emulator, processes, chaos_report):
    keys = secrets(hook_env)
    rng = random.Random(7)
    fails = Counter()

    def answer(n: int) -> tuple[int, float]:
        if rng.random() < 0.3:
            fails["HTTP 500"] += 1
            return 500, 0.0
        return 200, 0.0

    with Receiver(keys["alpha"], answer=answer) as rx_a, Receiver(keys["beta"], answer=answer) as rx_b:
        procs = start(processes, hook_env)
        t0 = time.monotonic()
        submit(hook_env, {"alpha": rx_a.url, "beta": rx_b.url})
        wait_for(lambda: delivered([rx_a, rx_b]) >= 2 * PER_TENANT, 180, "all webhooks", procs)
        result = measure("webhook receiver answers 500 on 30% of calls", t0, [rx_a, rx_b], dict(fails))
    chaos_report.append(result)
    check_logs(procs)
    assert result.lost == 0 and result.duplicated == 0, result


def test_never_answering_receiver_beside_a_healthy_one(hook_env, emulator, processes, chaos_report):
    keys = secrets(hook_env)
    with Receiver(keys["alpha"], answer=lambda n: (200, 3600.0)) as dead, Receiver(keys["beta"]) as healthy:
        procs = start(processes, hook_env)
        t0 = time.monotonic()
        submit(hook_env, {"alpha": dead.url, "beta": healthy.url})
        wait_for(lambda: len(healthy.delivered()) >= PER_TENANT, 60, "the healthy receiver's webhooks", procs)
        took = time.monotonic() - t0
        result = measure(
            "a never-answering receiver (timeouts) beside a healthy one: the healthy one's results",
            t0,
            [healthy],
            {"timeouts (2 s)": len(dead.calls)},
        )
        result.submitted, result.lost = PER_TENANT, PER_TENANT - result.delivered  # the healthy tenant's alone
    chaos_report.append(result)
    check_logs(procs)
    assert result.lost == 0 and result.duplicated == 0, result
    assert dead.calls, "the dead receiver was never tried"
    assert took < 60
