"""Pure parts of external reply targets: Standard Webhooks signing against the spec's vector, the
URL rules (scheme, userinfo, SSRF), what an answer means, the retry schedule, tenant URL patterns."""

from __future__ import annotations

import base64

import pytest

from batchline.errors import InvalidRequest
from batchline.keys import Keys
from batchline.requests import ReplyTarget
from batchline.tenants import Tenant, check_limits, url_matches
from batchline.webhooks import (
    WebhookPolicy,
    WebhookVerificationError,
    new_secret,
    parse_url,
    secret_bytes,
    sign,
    signature,
    verify,
)
from batchline.workers.sqs_sender import dedup_id
from batchline.workers.webhook_sender import SendPolicy, Verdict, classify, retry_after

# https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md (test vector)
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def spec_headers(sig: str = SPEC_SIG, ts: int = SPEC_TS) -> dict[str, str]:
    return {"webhook-id": SPEC_ID, "webhook-timestamp": str(ts), "webhook-signature": sig}


def test_signature_matches_the_spec_vector():
    assert signature(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIG
    assert sign([SPEC_SECRET], SPEC_ID, SPEC_TS, SPEC_BODY) == spec_headers()


def test_verify_accepts_the_spec_vector():
    verify(SPEC_SECRET, spec_headers(), SPEC_BODY, now=SPEC_TS)
    verify(SPEC_SECRET, {k.title(): v for k, v in spec_headers().items()}, SPEC_BODY.decode(), now=SPEC_TS + 10)


@pytest.mark.parametrize(
    ("headers", "body", "now", "why"),
    [
        (spec_headers(), b'{"test": 2432232315}', SPEC_TS, "no matching signature"),
        (spec_headers("v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="), SPEC_BODY, SPEC_TS, "no matching"),
        (spec_headers("v2," + SPEC_SIG[3:]), SPEC_BODY, SPEC_TS, "no matching"),
        (spec_headers(), SPEC_BODY, SPEC_TS + 301, "too far"),
        (spec_headers(), SPEC_BODY, SPEC_TS - 301, "too far"),
        ({"webhook-id": SPEC_ID, "webhook-timestamp": str(SPEC_TS)}, SPEC_BODY, SPEC_TS, "missing"),
        (spec_headers(ts=SPEC_TS + 1), SPEC_BODY, SPEC_TS, "no matching"),
    ],
)
def test_verify_refuses(headers, body, now, why):
    with pytest.raises(WebhookVerificationError, match=why):
        verify(SPEC_SECRET, headers, body, now=now)


def test_rotation_signs_with_both_and_each_secret_verifies():
    old, new = SPEC_SECRET, new_secret()
    headers = sign([new, old], SPEC_ID, SPEC_TS, SPEC_BODY)
    first, second = headers["webhook-signature"].split(" ")
    assert second == SPEC_SIG and first.startswith("v1,")
    verify(old, headers, SPEC_BODY, now=SPEC_TS)
    verify(new, headers, SPEC_BODY, now=SPEC_TS)
    with pytest.raises(WebhookVerificationError):
        verify(new_secret(), headers, SPEC_BODY, now=SPEC_TS)


def test_new_secret_is_whsec_base64_of_32_bytes():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret_bytes(secret)) == 32
    assert base64.b64decode(secret.removeprefix("whsec_")) == secret_bytes(secret)


def public(host: str, port: int) -> list[str]:
    return ["93.184.215.14"]


def at(*addresses: str):
    return lambda host, port: list(addresses)


STRICT = WebhookPolicy()
LOCAL = WebhookPolicy(allow_http=True, allow_private=("127.0.0.1", "10.1.0.0/16", "hooks.internal"))


@pytest.mark.parametrize(
    ("url", "policy", "resolver", "rule"),
    [
        ("ftp://example.com/x", STRICT, public, "must be https://"),
        ("http://example.com/x", STRICT, public, "BATCHLINE_WEBHOOK_ALLOW_HTTP"),
        ("https://user:pw@example.com/x", STRICT, public, "userinfo"),
        ("https://@example.com/x", STRICT, public, "userinfo"),
        ("https:///x", STRICT, public, "needs a host"),
        ("https://example.com:99999/x", STRICT, public, "not a valid URL"),
        ("https://[::1/x", STRICT, public, "not a valid URL"),
        ("https://example.com/a b", STRICT, public, "spaces"),
        ("https://example.com/x#frag", STRICT, public, "fragment"),
        ("https://example.com/" + "x" * 3000, STRICT, public, "at most 2048"),
        ("https://127.0.0.1/x", STRICT, None, "loopback"),
        ("https://localhost/x", STRICT, at("127.0.0.1"), "loopback"),
        ("https://[::1]/x", STRICT, None, "loopback"),
        ("https://10.0.0.5/x", STRICT, None, "private"),
        ("https://192.168.1.1/x", STRICT, None, "private"),
        ("https://169.254.169.254/latest/meta-data", LOCAL, None, "metadata"),
        ("https://169.254.10.1/x", STRICT, None, "link-local"),
        ("https://[::ffff:127.0.0.1]/x", STRICT, None, "loopback"),
        ("https://rebind.example/x", STRICT, at("93.184.215.14", "10.0.0.1"), "private"),
        ("https://10.2.0.1/x", LOCAL, None, "private"),  # outside the allowed CIDR
        ("https://unresolvable.invalid/x", STRICT, None, "does not resolve"),
    ],
)
def test_webhook_urls_refused(url, policy, resolver, rule):
    with pytest.raises(InvalidRequest) as exc:
        parse_url(url, policy, resolver)
    assert exc.value.field == "reply_to" and rule in exc.value.rule


@pytest.mark.parametrize(
    ("url", "resolver"),
    [
        ("https://example.com/hook", public),
        ("http://127.0.0.1:8080/hook", None),
        ("http://10.1.2.3/hook", None),
        ("https://hooks.internal/x", at("192.168.0.9")),
        ("https://HOOKS.internal/x", at("192.168.0.9")),
    ],
)
def test_webhook_urls_allowed(url, resolver):
    policy = STRICT if url.startswith("https://example.com") else LOCAL
    assert parse_url(url, policy, resolver).url == url


def test_reply_target_forms():
    assert ReplyTarget.parse("https://example.com/h?x=1") == ReplyTarget("webhook", "https://example.com/h?x=1")
    assert ReplyTarget.parse("sqs:results") == ReplyTarget("sqs", "results")
    assert ReplyTarget.parse("sqs:results.fifo").name == "results.fifo"
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/results"
    assert ReplyTarget.parse(f"sqs:{url}") == ReplyTarget("sqs", url)
    assert ReplyTarget.parse("sqs:results").external and not ReplyTarget.parse("redis-stream:x").external
    for bad in ("sqs:", "sqs:has space", "sqs:a/b", "sqs:" + "q" * 81, "sqs:ftp://x/1/q", "sqs:https://h/q"):
        with pytest.raises(InvalidRequest) as exc:
            ReplyTarget.parse(bad)
        assert exc.value.field == "reply_to" and "sqs:QUEUE_NAME" in exc.value.rule
    with pytest.raises(InvalidRequest, match="userinfo"):
        ReplyTarget.parse("https://u:p@example.com/")  # the form is checked even without a policy


@pytest.mark.parametrize(
    ("status", "header", "verdict", "after"),
    [
        (200, None, Verdict.DELIVERED, None),
        (204, None, Verdict.DELIVERED, None),
        (429, "7", Verdict.LATER, 7.0),
        (408, None, Verdict.LATER, None),
        (500, None, Verdict.LATER, None),
        (503, "120", Verdict.LATER, 120.0),
        (410, None, Verdict.NEVER, None),
        (400, None, Verdict.NEVER, None),
        (404, "5", Verdict.NEVER, None),
        (301, None, Verdict.NEVER, None),
    ],
)
def test_classify(status, header, verdict, after):
    result = classify(status, header)
    assert (result.verdict, result.retry_after) == (verdict, after)
    if verdict is not Verdict.DELIVERED:
        assert f"HTTP {status}" in result.error


def test_retry_after_http_date():
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == pytest.approx(30)
    assert retry_after("soon") is None and retry_after(None) is None


@pytest.mark.parametrize(
    ("tries", "asked", "rand", "delay_ms"),
    [
        (1, None, 0.0, 500),  # 1 s with equal jitter: between 0.5 and 1 s
        (1, None, 1.0, 1000),
        (4, None, 1.0, 8000),
        (30, None, 1.0, 600_000),  # capped
        (1, 45.0, 0.0, 45_000),  # Retry-After wins over a shorter backoff
        (10, 1.0, 1.0, 512_000),  # ... but never shortens it
    ],
)
def test_send_policy_backoff(tries, asked, rand, delay_ms):
    now = 1_000_000
    assert SendPolicy(86400).next_due(now, now, tries, asked, rand) == now + delay_ms


def test_send_policy_window():
    policy = SendPolicy(3600)
    since = 0
    assert policy.next_due(3_599_000, since, 20, None, 1.0) == 3_600_000  # last try at the window's end
    assert policy.next_due(3_600_000, since, 21, None, 1.0) is None
    assert policy.next_due(10, since, 1, 10_000.0, 0.0) == 3_600_000  # a Retry-After past the end


@pytest.mark.parametrize(
    ("url", "pattern", "ok"),
    [
        ("https://hooks.example.com/a/b", "https://hooks.example.com/*", True),
        ("https://x.example.com/a", "https://*.example.com/*", True),
        ("https://evil.net/.example.com/", "https://*.example.com/*", False),
        ("https://hooks.example.com.evil.net/a", "https://hooks.example.com/*", False),
        ("http://hooks.example.com/a", "https://hooks.example.com/*", False),
        ("https://hooks.example.com:8443/a", "https://hooks.example.com/*", False),
        ("https://hooks.example.com:8443/a", "https://hooks.example.com:8443/*", True),
        ("https://hooks.example.com/a?x=1", "https://hooks.example.com/a", False),
        ("https://hooks.example.com/other", "https://hooks.example.com/a/*", False),
    ],
)
def test_tenant_url_patterns(url, pattern, ok):
    assert url_matches(url, pattern) is ok
    assert Tenant("t", reply_to=(pattern,)).allows_reply_to(url, Keys("bl")) is ok


def test_tenant_patterns_for_new_kinds():
    check_limits(Tenant("t", reply_to=("https://hooks.example.com/*", "sqs:t-*", "http://10.0.0.1/x")))
    assert Tenant("t", reply_to=("sqs:t-*",)).allows_reply_to("sqs:t-results", Keys("bl"))
    assert not Tenant("t", reply_to=("sqs:t-*",)).allows_reply_to("sqs:other", Keys("bl"))
    for bad in ("https://*", "https://u@h/x", "ftp://h/x"):
        with pytest.raises(InvalidRequest) as exc:
            check_limits(Tenant("t", reply_to=(bad,)))
        assert exc.value.field == "reply_to"


def test_fifo_dedup_id_fits():
    assert dedup_id("t:c:1") == "t:c:1"
    assert len(dedup_id("t:" + "c" * 200)) == 64
