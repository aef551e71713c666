"""Webhook reply targets end to end: real Redis, the emulator over HTTP, and a real HTTP receiver on
loopback (allowed by BATCHLINE_WEBHOOK_ALLOW_PRIVATE) that verifies every Standard Webhooks
signature. Deliveries go through the outbox (`workers/delivery.py`), as the delivery tasks run it."""

from __future__ import annotations

import json
import time
import uuid

import httpx2
import pytest

from batchline.clock import FakeClock
from batchline.errors import InvalidRequest
from batchline.keys import Keys
from batchline.producers.producer import Producer
from batchline.tenants import WebhookSecrets
from batchline.webhook_receiver import Receiver
from batchline.webhooks import WebhookPolicy
from batchline.workers import delivery
from batchline.workers.context import Context
from batchline.workers.targets import redeliver, undeliverable_ids
from batchline.workers.webhook_sender import Verdict, post
from tests.integration.pipeline import drain


def params(i: int) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": f"n{i}"}]}


@pytest.fixture
def hook_settings(pipeline_settings):
    return pipeline_settings.replace(
        webhook_allow_http=True, webhook_allow_private=("127.0.0.1",), webhook_timeout_seconds=2.0
    )


def secret_for(settings, tenant: str, redis_client) -> str:
    return WebhookSecrets(redis_client, Keys(settings.key_prefix)).rotate(tenant)


def submit(settings, tenant: str, url: str, n: int, prefix: str = "w") -> Producer:
    producer = Producer.from_settings(settings)
    report = producer.submit_many(
        ({"custom_id": f"{prefix}-{i}", "params": params(i)} for i in range(n)), tenant=tenant, reply_to=url
    )
    assert report.accepted == n, report.rejected
    return producer


def deliver_all(ctx: Context, rounds: int = 50, clock: FakeClock | None = None, step: float = 0.0) -> None:
    """Outbox rounds as beat's tick runs them, until the outbox is empty."""
    for _ in range(rounds):
        delivery.run_due(ctx)
        if ctx.redis.zcard(ctx.keys.outbox) == 0:
            return
        if clock is not None:
            clock.advance(step)
        else:
            time.sleep(0.2)
    raise AssertionError(f"outbox not empty: {ctx.redis.zrange(ctx.keys.outbox, 0, -1, withscores=True)}")


def test_signed_webhooks_delivered_and_verified(hook_settings, redis_client):
    secret = secret_for(hook_settings, "acme", redis_client)
    with Receiver(secret) as rx:
        producer = submit(hook_settings, "acme", rx.url, 20)
        ctx = Context(hook_settings)
        drain(ctx)
        assert producer.status("w-3", tenant="acme")["state"] == "delivering"  # the fan-out never waits on it
        deliver_all(ctx)
        assert rx.bad_signatures == 0
        got = rx.delivered()
        assert sorted(got) == sorted(f"w-{i}" for i in range(20))
        call = got["w-3"]
        status = producer.status("w-3", tenant="acme")
        assert status["state"] == "delivered"
        assert (
            call.webhook_id
            == call.body["idempotency_key"]
            == f"acme:w-3:{redis_client.hget(ctx.keys.request(status['request_id']), 'q').decode()}"
        )
        assert call.body["outcome"] == "succeeded" and call.body["result"]["type"] == "succeeded"
        assert set(call.body) == {"custom_id", "tenant", "outcome", "s3_key", "batch_id", "result", "idempotency_key"}
        assert call.body["s3_key"].endswith("/acme/w-3.json")
        assert call.headers["webhook-signature"].startswith("v1,") and " " not in call.headers["webhook-signature"]
        assert int(redis_client.hget(ctx.keys.counters, "delivered:acme:succeeded")) == 20


def test_rotation_grace_signs_with_both(hook_settings, redis_client):
    store = WebhookSecrets(redis_client, Keys(hook_settings.key_prefix))
    old = store.rotate("acme")
    new = store.rotate("acme", grace_seconds=3600)
    assert store.live("acme") == [new, old]
    with Receiver(old) as rx_old, Receiver(new) as rx_new:
        submit(hook_settings, "acme", rx_old.url, 2, "a")
        submit(hook_settings, "acme", rx_new.url, 2, "b")
        ctx = Context(hook_settings)
        drain(ctx)
        deliver_all(ctx)
        assert rx_old.bad_signatures == rx_new.bad_signatures == 0
        assert len(rx_old.delivered()) == len(rx_new.delivered()) == 2
        assert len(rx_new.calls[0].headers["webhook-signature"].split(" ")) == 2
    store.rotate("acme", grace_seconds=0)
    assert len(store.live("acme")) == 1


def test_500s_then_success_retried_with_backoff(hook_settings, redis_client):
    secret = secret_for(hook_settings, "acme", redis_client)
    with Receiver(secret, answer=lambda n: (500 if n < 6 else 200, 0.0)) as rx:
        rx.headers_out = {"retry-after": "3"}
        producer = submit(hook_settings, "acme", rx.url, 3)
        clock = FakeClock()
        ctx = Context(hook_settings, clock=clock)
        drain(ctx)
        delivery.run_due(ctx)
        status = producer.status("w-0", tenant="acme")
        assert status["state"] == "delivering" and status["send_error"].endswith("/hook: HTTP 500")
        due = redis_client.zrange(ctx.keys.outbox, 0, -1, withscores=True)
        assert all(score >= clock.now_ms() + 3000 for _, score in due)  # Retry-After honoured
        assert delivery.run_due(ctx).claimed == 0  # not due yet
        deliver_all(ctx, clock=clock, step=4)
        assert len(rx.calls) == 9 and rx.bad_signatures == 0
        assert sorted(rx.delivered()) == ["w-0", "w-1", "w-2"]
        # every try of one request carried the same webhook-id
        ids = {c.body["custom_id"]: set() for c in rx.calls}
        for c in rx.calls:
            ids[c.body["custom_id"]].add(c.webhook_id)
        assert all(len(v) == 1 for v in ids.values())
        assert producer.status("w-0", tenant="acme")["state"] == "delivered"


def test_gone_410_is_undeliverable_at_once_then_redeliver(hook_settings, redis_client):
    secret = secret_for(hook_settings, "acme", redis_client)
    answers = {"status": 410}
    with Receiver(secret, answer=lambda n: (answers["status"], 0.0)) as rx:
        producer = submit(hook_settings, "acme", rx.url, 2)
        ctx = Context(hook_settings)
        drain(ctx)
        report = delivery.run_due(ctx)
        assert report.undeliverable == 2 and len(rx.calls) == 2
        status = producer.status("w-1", tenant="acme")
        assert status["state"] == "undeliverable" and "HTTP 410" in status["delivery_error"]
        assert "127.0.0.1" in status["delivery_error"]
        assert sorted(undeliverable_ids(ctx, tenant="acme")) == sorted(r for r in undeliverable_ids(ctx))
        answers["status"] = 200
        again = redeliver(ctx, None, undeliverable_ids(ctx, tenant="acme"))
        assert (again.delivering, again.failed) == (2, {})
        deliver_all(ctx)
        assert producer.status("w-1", tenant="acme")["state"] == "delivered"
        assert undeliverable_ids(ctx) == []
        assert int(redis_client.hget(ctx.keys.counters, "delivered:acme:succeeded")) == 2


def test_retries_stop_after_the_window(hook_settings, redis_client):
    s = hook_settings.replace(webhook_retry_hours=1.0)
    secret_for(s, "acme", redis_client)
    with Receiver(answer=lambda n: (503, 0.0)) as rx:
        producer = submit(s, "acme", rx.url, 1)
        clock = FakeClock()
        ctx = Context(s, clock=clock)
        drain(ctx)
        deliver_all(ctx, rounds=200, clock=clock, step=700)
        status = producer.status("w-0", tenant="acme")
        assert status["state"] == "undeliverable"
        assert "gave up after" in status["delivery_error"] and "over 1 h: HTTP 503" in status["delivery_error"]
        assert len(rx.calls) >= 5


def test_no_secret_is_undeliverable_with_the_fix(hook_settings, redis_client):
    with Receiver() as rx:
        producer = submit(hook_settings, "nosecret", rx.url, 1)
        ctx = Context(hook_settings)
        drain(ctx)
        delivery.run_due(ctx)
        assert rx.calls == []
        assert (
            "batchline tenants webhook-secret nosecret" in producer.status("w-0", tenant="nosecret")["delivery_error"]
        )


def test_dead_host_never_delays_a_healthy_one(hook_settings, redis_client):
    secret = secret_for(hook_settings, "acme", redis_client)
    s = hook_settings.replace(webhook_timeout_seconds=4.0)
    with Receiver(secret, answer=lambda n: (200, 30.0)) as dead, Receiver(secret) as healthy:
        submit(s, "acme", dead.url, 10, "d")
        submit(s, "acme", healthy.url, 30, "h")
        ctx = Context(s)
        drain(ctx)
        start = time.monotonic()
        report = delivery.run_due(ctx)
        took = time.monotonic() - start
        assert report.delivered == 30 and report.delivered + report.retried + report.waiting == 40
        assert sorted(healthy.delivered()) == sorted(f"h-{i}" for i in range(30))
        # all of the healthy host's results arrived well before the dead host's first timeout
        assert max(c.at for c in healthy.calls) - start < 2.0, "the healthy host waited on the dead one"
        assert 4.0 <= took < 4.0 * 2  # one wave of timeouts, then the dead host's rest waits for a later round
        assert len(dead.calls) <= s.webhook_max_concurrency  # the rest were not even tried this round


def test_per_host_concurrency_is_bounded(hook_settings, redis_client):
    secret = secret_for(hook_settings, "acme", redis_client)
    s = hook_settings.replace(webhook_max_concurrency=3)
    with Receiver(secret, answer=lambda n: (200, 0.05)) as rx:
        submit(s, "acme", rx.url, 24)
        ctx = Context(s)
        drain(ctx)
        deliver_all(ctx)
        assert len(rx.delivered()) == 24 and rx.max_in_flight <= 3


def test_crash_mid_delivery_resends_with_the_same_webhook_id(hook_settings, redis_client):
    secret = secret_for(hook_settings, "acme", redis_client)
    with Receiver(secret) as rx:
        producer = submit(hook_settings, "acme", rx.url, 3)
        clock = FakeClock()
        ctx = Context(hook_settings, clock=clock)
        drain(ctx)
        real = ctx.scripts.external

        def crash(*args, **kwargs):
            raise SystemExit("worker killed after the posts, before settling")

        ctx.scripts.external = crash  # type: ignore[method-assign]
        with pytest.raises(SystemExit):
            delivery.run_due(ctx)
        ctx.scripts.external = real  # type: ignore[method-assign]
        assert len(rx.calls) == 3 and producer.status("w-0", tenant="acme")["state"] == "delivering"
        assert delivery.run_due(ctx).claimed == 0  # still claimed by the dead sender
        clock.advance(delivery.lease_ms(ctx) / 1000 + 1)
        assert delivery.run_due(ctx).delivered == 3
        assert len(rx.calls) == 6
        by_cid: dict[str, list[str]] = {}
        for c in rx.calls:
            by_cid.setdefault(c.body["custom_id"], []).append(c.webhook_id)
        assert all(len(ids) == 2 and ids[0] == ids[1] for ids in by_cid.values())
        assert producer.status("w-0", tenant="acme")["state"] == "delivered"


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://127.0.0.1:9/hook", "BATCHLINE_WEBHOOK_ALLOW_HTTP"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://localhost/hook", "loopback"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://10.0.0.7/hook", "private"),
        ("https://user:secret@example.com/hook", "userinfo"),
        ("https://exa mple.com/hook", "spaces"),
        ("https://example.com:abc/hook", "not a valid URL"),
        ("sqs:no/slashes", "sqs:QUEUE_NAME"),
    ],
)
def test_bad_targets_refused_at_intake_nothing_stored(settings, redis_client, url, rule):
    producer = Producer.from_settings(settings)
    before = redis_client.dbsize()
    with pytest.raises(InvalidRequest) as exc:
        producer.submit(f"x-{uuid.uuid4().hex[:6]}", params(0), tenant="t", reply_to=url)
    assert exc.value.field == "reply_to" and rule in exc.value.rule, exc.value.rule
    assert redis_client.dbsize() == before


def test_private_allowed_by_setting_at_intake(settings):
    producer = Producer.from_settings(settings.replace(webhook_allow_http=True, webhook_allow_private=("127.0.0.0/8",)))
    assert producer.submit("ok-1", params(1), reply_to="http://127.0.0.1:9/hook") == "accepted"


def test_delivery_time_check_refuses_a_rebound_address():
    """DNS rebinding: the name passed at intake, but now answers a private address: not connected to."""
    with Receiver() as rx, httpx2.Client() as client:
        result = post(
            client,
            "https://hooks.example.com/x",
            WebhookPolicy(),
            {},
            b"{}",
            1.0,
            resolver=lambda host, port: ["127.0.0.1"],
        )
        assert result.verdict is Verdict.NEVER and "loopback" in result.error
        # the checked address is the one connected to (Host kept), and a redirect is not followed
        rx.answer = lambda n: (302, 0.0)
        rx.headers_out = {"location": "http://169.254.169.254/"}
        allowed = WebhookPolicy(allow_http=True, allow_private=("hooks.example.com",))
        answers = iter([["127.0.0.1"], ["10.9.9.9"]])  # a second lookup would rebind: there is none
        result = post(
            client,
            f"http://hooks.example.com:{rx.port}/x",
            allowed,
            {},
            b"{}",
            1.0,
            resolver=lambda host, port: next(answers),
        )
        assert result.verdict is Verdict.NEVER and "redirects are not followed" in result.error
        assert rx.calls[0].headers["host"] == f"hooks.example.com:{rx.port}" and len(rx.calls) == 1


def test_tenants_cli_makes_and_rotates_webhook_secrets(settings, redis_client, monkeypatch, capsys):
    from batchline.cli import main
    from batchline.tenants import Tenant, TenantStore

    monkeypatch.setenv("BATCHLINE_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BATCHLINE_KEY_PREFIX", settings.key_prefix)
    keys = Keys(settings.key_prefix)
    TenantStore(redis_client, keys).add(Tenant("acme"))
    assert main(["tenants", "webhook-secret", "acme"]) == 0
    first = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["tenants", "webhook-secret", "acme", "--grace-seconds", "60"]) == 0
    out = capsys.readouterr().out
    second = out.strip().splitlines()[-1]
    assert first.startswith("whsec_") and second.startswith("whsec_") and "60 s" in out
    assert WebhookSecrets(redis_client, keys).live("acme") == [second, first]
    assert main(["tenants", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert first not in listed and second not in listed and len(json.loads(listed)[0]["webhook_secrets"]) == 2
    assert main(["tenants", "webhook-secret", "nobody"]) == 2
    assert "is not a tenant" in capsys.readouterr().err


def test_a_request_canceled_while_queued_gets_its_canceled_by_webhook(hook_settings, redis_client):
    from batchline.workers.cancels import settle_queued_cancels

    secret = secret_for(hook_settings, "acme", redis_client)
    with Receiver(secret) as rx:
        producer = submit(hook_settings, "acme", rx.url, 2)
        assert producer.cancel("w-0", tenant="acme") == "removed"
        ctx = Context(hook_settings)
        assert settle_queued_cancels(ctx) == 1
        assert producer.status("w-0", tenant="acme")["state"] == "delivering"
        assert delivery.run_due(ctx).delivered == 1
        assert rx.delivered()["w-0"].body["outcome"] == "canceled" and rx.bad_signatures == 0
        assert producer.status("w-0", tenant="acme")["state"] == "delivered"


def test_outbox_tick_is_due_only_when_a_send_is(hook_settings, redis_client):
    from batchline.workers import due
    from batchline.workers.app import DELIVER, OUTBOX
    from batchline.workers.task_summary import did_work

    secret = secret_for(hook_settings, "acme", redis_client)
    with Receiver(secret, answer=lambda n: (503 if n == 0 else 200, 0.0)) as rx:
        submit(hook_settings, "acme", rx.url, 1)
        clock = FakeClock()
        ctx = Context(hook_settings, clock=clock)
        assert due.outbox_due(ctx) is None
        drain(ctx)
        assert due.outbox_due(ctx) == {"due": 1}
        report = delivery.run_due(ctx)
        assert report.retried == 1 and due.outbox_due(ctx) is None  # backing off
        assert did_work(OUTBOX, {"claimed": 1}) and not did_work(DELIVER, {"claimed": 0})
        clock.advance(2)
        assert due.outbox_due(ctx) == {"due": 1}
        assert delivery.run_due(ctx).delivered == 1 and due.outbox_due(ctx) is None


def test_outbox_rounds_claim_the_next_round_while_one_sends(hook_settings, redis_client):
    secret = secret_for(hook_settings, "acme", redis_client)
    with Receiver(secret) as rx:
        submit(hook_settings, "acme", rx.url, 130)
        ctx = Context(hook_settings)
        drain(ctx)
        report = delivery.run_rounds(ctx, 30.0, limit=50)  # three rounds: 50, 50, 30
        assert (report.claimed, report.delivered, report.undeliverable) == (130, 130, 0)
        assert len(rx.calls) == 130 and len(rx.delivered()) == 130  # no request claimed by two rounds
        assert redis_client.zcard(ctx.keys.outbox) == 0
        assert delivery.run_rounds(ctx, 30.0).claimed == 0


def _dispatched(redis_client) -> list[list[str]]:
    """The send tasks' rids the hand-off put on the broker's delivery queue (kombu's Redis transport)."""
    import base64

    out = []
    for raw in redis_client.lrange("batchline.delivery", 0, -1):
        args, _kwargs, _embed = json.loads(base64.b64decode(json.loads(raw)["body"]))
        out.append(args[0])
    return out


def test_hand_off_holds_its_sends_for_the_send_task_so_no_tick_races_it(hook_settings, redis_client):
    from batchline.workers import due
    from batchline.workers.app import DELIVER, create_app
    from batchline.workers.task_summary import did_work

    secret = secret_for(hook_settings, "acme", redis_client)
    app = create_app(hook_settings)
    with Receiver(secret) as rx:
        submit(hook_settings, "acme", rx.url, 3)
        clock = FakeClock()
        ctx = Context(hook_settings, celery_app=app, clock=clock)
        drain(ctx)
        [rids] = _dispatched(redis_client)
        assert sorted(m.decode() for m in redis_client.zrange(ctx.keys.outbox_held, 0, -1)) == sorted(rids)
        assert due.outbox_due(ctx) is None  # held for the send task: beat sends no outbox tick
        assert delivery.run_rounds(ctx, 5.0).claimed == 0  # and a tick sent anyway would leave them to it
        report = delivery.run_due(ctx, rids)  # what the send task runs
        assert (report.claimed, report.delivered) == (3, 3) and did_work(DELIVER, {"claimed": report.claimed})
        assert redis_client.zcard(ctx.keys.outbox_held) == 0 and redis_client.zcard(ctx.keys.outbox) == 0
        assert len(rx.delivered()) == 3 and rx.bad_signatures == 0
    app.close()


def test_a_send_task_that_never_comes_leaves_its_sends_due_after_one_lease(hook_settings, redis_client):
    from batchline.workers import due
    from batchline.workers.app import create_app

    secret = secret_for(hook_settings, "acme", redis_client)
    app = create_app(hook_settings)
    with Receiver(secret) as rx:
        submit(hook_settings, "acme", rx.url, 2)
        clock = FakeClock()
        ctx = Context(hook_settings, celery_app=app, clock=clock)
        drain(ctx)
        [rids] = _dispatched(redis_client)
        clock.advance(delivery.lease_ms(ctx) / 1000 - 1)
        assert due.outbox_due(ctx) is None
        clock.advance(1)
        assert due.outbox_due(ctx) == {"due": 2}  # the task was lost: the tick takes them
        assert delivery.run_rounds(ctx, 5.0).delivered == 2
        assert redis_client.zcard(ctx.keys.outbox_held) == 0
        assert delivery.run_due(ctx, rids).claimed == 0  # the late task finds them sent: none sent twice
        assert len(rx.calls) == 2
    app.close()


def test_a_send_task_not_dispatched_releases_its_sends_due_now(hook_settings, redis_client):
    from batchline.local_services import free_port
    from batchline.workers import due
    from batchline.workers.app import create_app

    secret = secret_for(hook_settings, "acme", redis_client)
    no_broker = create_app(hook_settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    no_broker.conf.broker_connection_max_retries = 0
    no_broker.conf.task_publish_retry = False
    with Receiver(secret) as rx:
        submit(hook_settings, "acme", rx.url, 2)
        ctx = Context(hook_settings, celery_app=no_broker)
        drain(ctx)
        assert redis_client.zcard(ctx.keys.outbox_held) == 0  # the send failed: released, not held
        assert due.outbox_due(ctx) == {"due": 2}
        assert delivery.run_due(ctx).delivered == 2 and len(rx.calls) == 2
    no_broker.close()


def test_outbox_gauges_show_a_receiver_that_does_not_take_its_sends(hook_settings, redis_client):
    """`batchline metrics` and `batchline status`: the outbox's depth stays while its receiver answers
    503 (retries wait, nothing due), and the oldest due age grows when no delivery task sends."""
    from rich.console import Console

    from batchline.metrics import PipelineCollector
    from batchline.producers.status_cli import render
    from batchline.reports import snapshot

    def gauges() -> dict[str, float]:
        names = ("outbox_requests", "outbox_due_requests", "outbox_oldest_due_age_seconds")
        families = {f.name: f for f in PipelineCollector(ctx.redis, ctx.keys, 1).collect()}
        return {n: families[f"batchline_{n}"].samples[0].value for n in names}

    secret = secret_for(hook_settings, "acme", redis_client)
    with Receiver(secret, answer=lambda n: (503, 0.0)) as rx:
        submit(hook_settings, "acme", rx.url, 3)
        ctx = Context(hook_settings)
        assert gauges() == {"outbox_requests": 0, "outbox_due_requests": 0, "outbox_oldest_due_age_seconds": 0}
        drain(ctx)
        assert gauges()["outbox_requests"] == gauges()["outbox_due_requests"] == 3
        assert delivery.run_due(ctx).retried == 3 and len(rx.calls) == 3
        assert gauges() == {"outbox_requests": 3, "outbox_due_requests": 0, "outbox_oldest_due_age_seconds": 0}
        now = ctx.clock.now_ms()
        redis_client.zadd(ctx.keys.outbox, {m: now - 30_000 for m in redis_client.zrange(ctx.keys.outbox, 0, -1)})
        seen = gauges()  # as if no delivery task had run for 30 s past their retry
        assert seen["outbox_due_requests"] == 3 and 29 <= seen["outbox_oldest_due_age_seconds"] < 40, seen
        console = Console(width=200, record=True)
        console.print(render(snapshot(ctx.redis, ctx.keys), 1))
        assert "3 delivering (webhook, SQS), 3 due, the oldest due 3" in console.export_text()


def test_a_round_resolves_and_checks_each_host_once_and_connects_to_that_address(
    hook_settings, redis_client, monkeypatch
):
    """The delivery-time check runs once per round for a host's sends (not once per send): every send
    of the round goes to the address checked then; the next round looks again."""
    from batchline import webhooks

    lookups: list[str] = []
    real = webhooks.resolve
    monkeypatch.setattr(webhooks, "resolve", lambda host, port: lookups.append(host) or real(host, port))
    secret = secret_for(hook_settings, "acme", redis_client)
    with Receiver(secret) as rx:
        submit(hook_settings, "acme", rx.url, 20)
        ctx = Context(hook_settings)
        drain(ctx)
        lookups.clear()  # intake's check
        assert delivery.run_due(ctx).delivered == 20 and len(rx.delivered()) == 20
        assert lookups == ["127.0.0.1"]
        assert "host" in rx.calls[0].headers and rx.calls[0].headers["user-agent"] == "batchline-webhooks"
