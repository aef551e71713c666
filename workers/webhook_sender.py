"""One webhook send: resolve and check the host (`check_now`: once per round for a host's sends),
connect to the checked address, post the signed body, and say what the answer means (delivered,
later, or never). Redirects are not followed.

The decisions (`classify`, `SendPolicy.next_due`) are pure; `post` is the thin effect around them.
"""

from __future__ import annotations

import email.utils
import ipaddress
import logging
import random
import threading
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from urllib.parse import urlsplit

import httpx2

from batchline.errors import InvalidRequest
from batchline.webhooks import Resolver, WebhookPolicy, WebhookURL, parse_url

_sending = threading.local()
USER_AGENT = "batchline-webhooks"


class _QuietSends(logging.Filter):
    """httpx2 logs every request's URL at INFO; a webhook URL's query may carry the receiver's token,
    so its lines are dropped while this thread posts a webhook (other clients' lines are kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_sending, "on", False)


logging.getLogger("httpx2").addFilter(_QuietSends())


class Verdict(StrEnum):
    DELIVERED = "D"
    LATER = "L"  # 408, 429, 5xx, a timeout or a dropped connection: retried with backoff
    NEVER = "U"  # another 4xx, a redirect, a refused address: undeliverable at once


@dataclass(frozen=True, slots=True)
class SendResult:
    verdict: Verdict
    error: str = ""  # for LATER and NEVER: what happened (status, exception), never a header or a body
    retry_after: float | None = None  # seconds the receiver asked for (Retry-After)
    host_down: bool = False  # no answer at all (connect error, timeout): the host's other sends wait


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP date (RFC 9110); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify(status: int, retry_after_header: str | None = None, location: str | None = None) -> SendResult:
    """What an HTTP answer means for this delivery."""
    if 200 <= status < 300:
        return SendResult(Verdict.DELIVERED)
    if status in (408, 429) or status >= 500:
        return SendResult(Verdict.LATER, f"HTTP {status}", retry_after(retry_after_header))
    if 300 <= status < 400:
        where = f" to {location[:200]}" if location else ""
        return SendResult(Verdict.NEVER, f"HTTP {status}: redirects are not followed{where}")
    return SendResult(Verdict.NEVER, f"HTTP {status}")


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """When a failed send goes again: exponential backoff with jitter, at least what Retry-After
    asked, within `window_seconds` of the first try (BATCHLINE_WEBHOOK_RETRY_HOURS); then never."""

    window_seconds: float = 24 * 3600.0
    base_seconds: float = 1.0
    cap_seconds: float = 600.0

    def next_due(
        self, now_ms: int, since_ms: int, tries: int, asked: float | None, rand: float | None = None
    ) -> int | None:
        """When the next try is due (ms), or None: the window is over. `tries`: sends so far, this one included."""
        deadline = since_ms + int(self.window_seconds * 1000)
        if now_ms >= deadline:
            return None
        backoff = min(self.cap_seconds, self.base_seconds * 2 ** max(0, tries - 1))
        delay = backoff * (0.5 + 0.5 * (random.random() if rand is None else rand))  # equal jitter
        if asked is not None:
            delay = max(delay, asked)
        return min(now_ms + int(delay * 1000), deadline)


def _pinned(url: str, address: str) -> tuple[str, str | None]:
    """The URL with its host replaced by the checked address, and the Host header it keeps (None when
    the URL named that address already: the client's own Host header is the same)."""
    parts = urlsplit(url)
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    shown = f"[{ip}]" if ip.version == 6 else str(ip)
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return parts._replace(netloc=netloc).geturl(), None if host_header == netloc else host_header


@dataclass(frozen=True, slots=True)
class Checked:
    """A webhook URL whose host was just resolved and every address checked: the URL rewritten to the
    first checked address (the one connected to, never a second lookup's), and the Host header."""

    target: WebhookURL
    url: str
    host_header: str | None  # None: the URL's own (it named the address)


def check_now(
    url: str, policy: WebhookPolicy, resolver: Resolver | None = None, form: WebhookURL | None = None
) -> Checked | SendResult:
    """Resolve now and check every address (DNS rebinding); what a send to `url` would connect to, or
    the SendResult it ends with. `form`: the URL already split and its form checked."""
    try:
        if form is None:
            target = parse_url(url, policy, resolver)
        else:
            target = replace(form, addresses=tuple(policy.checked_addresses(form.host, form.port, resolver)))
    except InvalidRequest as exc:
        if "does not resolve" in exc.rule:
            return SendResult(Verdict.LATER, exc.rule, host_down=True)
        return SendResult(Verdict.NEVER, exc.rule)
    pinned, host_header = _pinned(url, target.addresses[0])
    return Checked(target, pinned, host_header)


def post(
    client: httpx2.Client,
    url: str,
    policy: WebhookPolicy,
    headers: dict[str, str],
    body: bytes,
    timeout: float,
    resolver: Resolver | None = None,
    form: WebhookURL | None = None,
    checked: Checked | SendResult | None = None,
) -> SendResult:
    """Resolve now, check every address (DNS rebinding), connect to the first checked one, post.
    `form`: the URL already split and its form checked (`parse_url(..., check_host=False)`);
    `checked`: what `check_now` answered for it moments ago (a round's sends to one host share it)."""
    if checked is None:
        checked = check_now(url, policy, resolver, form)
    if isinstance(checked, SendResult):
        return checked
    target = checked.target
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    sent = {**headers, "content-type": "application/json"}  # the user-agent is the client's (new_client)
    if checked.host_header is not None:
        sent["host"] = checked.host_header
    _sending.on = True
    try:
        resp = client.post(checked.url, content=body, timeout=timeout, extensions=extensions, headers=sent)
    except httpx2.TimeoutException as exc:
        return SendResult(Verdict.LATER, f"timeout after {timeout:g} s ({type(exc).__name__})", host_down=True)
    except httpx2.TransportError as exc:
        return SendResult(Verdict.LATER, f"{type(exc).__name__}: {str(exc)[:200]}", host_down=True)
    finally:
        _sending.on = False
    return classify(resp.status_code, resp.headers.get("retry-after"), resp.headers.get("location"))


def new_client(max_connections: int) -> httpx2.Client:
    """One per worker process: no redirects, no proxies from the environment (the checked address is
    the one connected to), a pool sized for the per-host bound."""
    return httpx2.Client(
        follow_redirects=False,
        trust_env=False,
        headers={"user-agent": USER_AGENT},
        limits=httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
    )
