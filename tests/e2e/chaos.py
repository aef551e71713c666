"""The chaos harness: run several thousand requests through real processes with one fault, and
measure what a user cares about: lost, delivered twice, billed in two batches, time to recover."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import redis

from batchline.config.settings import Settings
from batchline.keys import Keys, request_id
from batchline.producers.producer import Producer
from batchline.redis_client import connect

TENANTS = ("alpha", "beta")


@dataclass
class ChaosResult:
    fault: str
    submitted: int
    delivered: int  # distinct requests with an outcome delivered
    lost: int
    duplicated: int
    billed_twice: int  # requests the emulator saw in more than one batch
    redriven: int  # requests deliberately sent again (transient error, expired, missing line)
    recover_seconds: float  # from the fault to the last delivery
    outcomes: dict[str, int]
    faults: dict[str, int]  # what the emulator injected (HTTP faults, cut streams, expired/errored lines)

    def row(self) -> str:
        unexpected = self.billed_twice - self.redriven
        return (f"| {self.fault} | {self.submitted} | {self.delivered} | {self.lost} | {self.duplicated} | "
                f"{self.billed_twice} ({self.redriven} re-driven, {max(0, unexpected)} not) | "
                f"{self.recover_seconds:.1f} | {', '.join(f'{k} {v}' for k, v in sorted(self.outcomes.items()))} | "
                f"{', '.join(f'{k} {v}' for k, v in sorted(self.faults.items())) or '-'} |")


def params(i: int, tenant: str) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 32,
            "messages": [{"role": "user", "content": f"chaos item {i} for {tenant}"}]}


def safe(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except redis.RedisError:
        return -1


class Chaos:
    def __init__(self, env: dict[str, str], emulator, per_tenant: int) -> None:
        self.env, self.emulator, self.per_tenant = env, emulator, per_tenant
        s = Settings.from_env(env)  # the key prefix as the processes see it: `{prefix}` in cluster mode
        self.client = connect(s.redis_url, s.key_prefix)  # a sentinel or cluster URL too (batchline/redis_url.py)
        self.keys = Keys(s.key_prefix)

    def stream(self, tenant: str) -> str:
        """A tenant's reply stream; in cluster mode it carries the key prefix's hash tag (same slot)."""
        return f"{{{self.keys.tag}}}.chaos:{tenant}" if self.keys.tag else f"chaos:{tenant}"

    def submit(self) -> None:
        producer = Producer.from_settings(Settings.from_env(self.env))
        for tenant in TENANTS:
            report = producer.submit_many(
                ({"custom_id": f"c-{i}", "params": params(i, tenant)} for i in range(self.per_tenant)),
                tenant=tenant, reply_to=f"redis-stream:{self.stream(tenant)}")
            assert report.accepted == self.per_tenant
        producer.close()

    def delivered_count(self) -> int:
        return safe(lambda: sum(self.client.xlen(self.stream(t)) for t in TENANTS))

    def batches_submitted(self) -> int:
        return safe(lambda: self.client.zcard(self.keys.open) + self.client.zcard(self.keys.ended))

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str, procs=()) -> None:
        from tests.e2e.conftest import wait_for

        wait_for(predicate, timeout, lambda: f"{what}; delivered {self.delivered_count()}", procs)

    def measure(self, fault: str, fault_at: float) -> ChaosResult:
        seen: Counter[str] = Counter()
        outcomes: Counter[str] = Counter()
        for tenant in TENANTS:
            for _, raw in self.client.xrange(self.stream(tenant)):
                f = {k.decode(): v.decode() for k, v in raw.items()}
                assert f["tenant"] == tenant
                text = json.loads(f["result"])
                if f["outcome"] == "succeeded":
                    i = int(f["custom_id"].removeprefix("c-"))
                    from batchline.emulator import reply_text

                    assert text["message"]["content"][0]["text"] == reply_text(params(i, tenant))
                seen[(tenant, f["custom_id"])] += 1
                outcomes[f["outcome"]] += 1
        submitted = self.per_tenant * len(TENANTS)
        redriven = set()
        for tenant in TENANTS:
            for i in range(self.per_tenant):
                rid = request_id(tenant, f"c-{i}")
                if int(self.client.hget(self.keys.request(rid), "a") or 0) > 1:
                    redriven.add(rid)
        books = self.emulator.books()
        multi = set(books["multi_batch_ids"])
        return ChaosResult(
            fault=fault, submitted=submitted, delivered=len(seen), lost=submitted - len(seen),
            duplicated=sum(seen.values()) - len(seen), billed_twice=len(multi),
            redriven=len(multi & redriven), recover_seconds=time.monotonic() - fault_at,
            outcomes=dict(outcomes),
            faults={**{k: v for k, v in books["http_faults"].items() if v},
                    **{f"{k} lines": v for k, v in books["results"].items() if k in ("expired", "errored") and v},
                    **foreign_faults(books["foreign"])},
        )


def foreign_faults(foreign: dict) -> dict[str, int]:
    """Another application's batches in the workspace, and what batchline did to them (must be 0)."""
    if not foreign.get("batches_created"):
        return {}
    return {"foreign batches": foreign["batches_created"],
            "foreign canceled/deleted": foreign["canceled"] + foreign["deleted"]}


REPORT_HEADER = """| fault | submitted | delivered | lost | delivered twice | billed in >1 batch | seconds to recover | outcomes | injected by the emulator |
|---|---|---|---|---|---|---|---|---|"""
