"""The demo's webhook part: a tenant with a signing secret, a receiver on loopback that verifies
every signature (`batchline.webhook_receiver`), and part of the sample delivered to it by the
`delivery` worker role. Webhooks are at least once: the count is of distinct requests with a 2xx,
and every resend must carry its first delivery's `webhook-id`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from batchline.keys import Keys
from batchline.tenants import WebhookSecrets
from batchline.webhook_receiver import Receiver

TENANT = "hooks"
#: what the workers need to post to a receiver on loopback over plain HTTP (tests and demos only)
ENV = {"BATCHLINE_WEBHOOK_ALLOW_HTTP": "1", "BATCHLINE_WEBHOOK_ALLOW_PRIVATE": "127.0.0.1",
       "BATCHLINE_DELIVERY_OUTBOX_SECONDS": "1"}


@dataclass
class Hooks:
    receiver: Receiver
    n: int = 0

    def stop(self) -> None:
        self.receiver.stop()

    def delivered(self) -> int:
        return len(self.receiver.delivered())

    def resent_with_another_id(self) -> int:
        first: dict[str, str] = {}
        other = 0
        for call in self.receiver.calls:
            cid = call.body.get("custom_id", "")
            other += first.setdefault(cid, call.webhook_id) != call.webhook_id
        return other


def start(stack: list[Any], client: Any, keys: Keys) -> Hooks:
    secret = WebhookSecrets(client, keys).rotate(TENANT)
    hooks = Hooks(Receiver(secret=secret).start())
    stack.append(hooks)
    return hooks


def submit(producer: Any, hooks: Hooks, n: int) -> Any:
    items = [{"custom_id": f"hook-{i:04d}", "params": {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [
        {"role": "user", "content": f"Webhook delivery {i}: summarise in one line"}]}} for i in range(n)]
    report = producer.submit_many(items, tenant=TENANT, reply_to=hooks.receiver.url)
    hooks.n = report.accepted
    return report


def wait(hooks: Hooks, deadline: float) -> None:
    while hooks.delivered() < hooks.n and time.monotonic() < deadline:
        time.sleep(0.5)


def verdict(console: Any, hooks: Hooks) -> int:
    got, bad, other = hooks.delivered(), hooks.receiver.bad_signatures, hooks.resent_with_another_id()
    console.print(f"Webhooks: {got} of {hooks.n} delivered to a receiver on {hooks.receiver.url}, "
                  f"{len(hooks.receiver.calls)} calls, {bad} bad signatures, {other} resent with another webhook-id",
                  markup=False)
    if got != hooks.n or bad or other:
        console.print("[red]demo failed: the webhook part did not deliver every request, signed, once[/red]")
        return 1
    return 0
