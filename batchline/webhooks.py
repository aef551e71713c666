"""Webhook reply targets: the URL rules (scheme, userinfo, SSRF) and Standard Webhooks signing.

Light on purpose (no HTTP client here): the producer checks a URL at intake with `WebhookPolicy`,
the result workers sign and send (`workers/webhook_sender.py`), and a receiver verifies with
`verify(secret, headers, body)`. Signatures follow https://www.standardwebhooks.com: `webhook-id`,
`webhook-timestamp` (seconds), `webhook-signature` = space-separated `v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`, keyed by the bytes that the secret's part after `whsec_` is the base64 of.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from batchline.errors import InvalidRequest

if TYPE_CHECKING:
    from batchline.config.settings import Settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
#: a receiver refuses a timestamp further than this from its clock (replayed captures)
TOLERANCE_SECONDS = 5 * 60
MAX_URL_CHARS = 2048
#: cloud metadata endpoints, refused even where private addresses are allowed by a broad CIDR
METADATA_HOSTS = frozenset({"169.254.169.254", "fd00:ec2::254", "metadata.google.internal", "100.100.100.200"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class WebhookVerificationError(Exception):
    """A delivery whose signature, id or timestamp does not check out."""


def new_secret() -> str:
    """A fresh signing secret, `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key bytes of `whsec_<base64>` (a bare base64 string is taken too, as the spec's libraries do)."""
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        raise WebhookVerificationError("the secret is not base64 after 'whsec_'") from None


@functools.lru_cache(maxsize=1024)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC-SHA256 keyed by `secret`, copied per message (a sender signs many with one secret)."""
    return hmac.new(secret_bytes(secret), digestmod=hashlib.sha256)


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
    mac = _keyed(secret).copy()
    mac.update(f"{msg_id}.{timestamp}.".encode())
    mac.update(body)
    return "v1," + base64.b64encode(mac.digest()).decode()


def sign(secrets_: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one delivery, signed by every live secret (newest first, during a grace period)."""
    sigs = " ".join(signature(s, msg_id, timestamp, body) for s in secrets_)
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": sigs}


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    """For receivers: raise `WebhookVerificationError` unless one of the signatures in `headers` is
    `secret`'s over this body and the timestamp is within `tolerance` seconds of `now`."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, stamp, sigs = (lower.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not msg_id or not stamp or not sigs:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is too far from now")
    expected = signature(secret, msg_id, timestamp, body.encode() if isinstance(body, str) else body)
    for candidate in sigs.split(" "):
        if candidate.startswith("v1,") and hmac.compare_digest(candidate, expected):
            return
    raise WebhookVerificationError("no matching signature")


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """Which webhook URLs may be named and reached (from BATCHLINE_WEBHOOK_ALLOW_HTTP and
    BATCHLINE_WEBHOOK_ALLOW_PRIVATE). Hashable: intake caches a parse per (target, policy)."""

    allow_http: bool = False
    #: hosts (names, matched case-insensitively) or CIDRs whose non-public addresses are allowed
    allow_private: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> WebhookPolicy:
        return cls(settings.webhook_allow_http, settings.webhook_allow_private)

    def allowed_host(self, host: str) -> bool:
        return host.lower() in {h.lower() for h in self.allow_private if _network(h) is None}

    def refusal(self, host: str, address: str) -> str | None:
        """Why `host` at `address` may not be reached (None when it may)."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        metadata = str(ip) in METADATA_HOSTS or host.lower() in METADATA_HOSTS
        if metadata and not any(str(ip) == h or host.lower() == h.lower() for h in self.allow_private):
            return f"{host} resolves to {ip}, a cloud metadata address"
        if ip.is_global and not ip.is_multicast:
            return None
        if self.allowed_host(host):
            return None
        for entry in self.allow_private:
            net = _network(entry)
            if net is not None and ip.version == net.version and ip in net:
                return None
        kind = (
            "loopback"
            if ip.is_loopback
            else "link-local"
            if ip.is_link_local
            else "private"
            if ip.is_private
            else "non-public"
        )
        return f"{host} resolves to {ip}, a {kind} address (allow it with BATCHLINE_WEBHOOK_ALLOW_PRIVATE)"

    def checked_addresses(self, host: str, port: int, resolver: Resolver | None = None) -> list[str]:
        """Every address `host` resolves to, all checked; raises `InvalidRequest` (field reply_to) when
        it does not resolve or any address is refused (one bad answer is enough for a rebinding)."""
        try:
            addresses = (resolver or resolve)(host, port)
        except OSError as exc:
            raise InvalidRequest("reply_to", f"webhook host {host!r} does not resolve ({exc})") from None
        if not addresses:
            raise InvalidRequest("reply_to", f"webhook host {host!r} does not resolve")
        for address in addresses:
            why = self.refusal(host, address)
            if why:
                raise InvalidRequest("reply_to", f"webhook URL refused: {why}")
        return addresses


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to now (IP literals resolve to themselves)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class WebhookURL:
    """A checked webhook URL, split once."""

    url: str
    scheme: str
    host: str  # lower-case; IPv6 without brackets
    port: int
    addresses: tuple[str, ...] = ()  # every address the host resolved to, all checked (empty: not resolved)

    @property
    def host_port(self) -> str:
        """The per-host bound's key: one host, one port."""
        return f"{self.host}:{self.port}"


def parse_url(
    text: str, policy: WebhookPolicy, resolver: Resolver | None = None, *, check_host: bool = True
) -> WebhookURL:
    """Check a webhook `reply_to` and (`check_host`) resolve its host and check every address;
    `InvalidRequest` names the rule it breaks."""
    shown = text[:200]
    if len(text) > MAX_URL_CHARS:
        raise InvalidRequest("reply_to", f"webhook URL is {len(text)} chars, at most {MAX_URL_CHARS}")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise InvalidRequest("reply_to", f"{shown!r}: a webhook URL may not contain spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest("reply_to", f"{shown!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("https", "http"):
        raise InvalidRequest("reply_to", f"{shown!r}: a webhook URL must be https://")
    if parts.scheme == "http" and not policy.allow_http:
        raise InvalidRequest("reply_to", f"{shown!r}: plain http:// webhooks are off (BATCHLINE_WEBHOOK_ALLOW_HTTP)")
    if "@" in parts.netloc:
        raise InvalidRequest("reply_to", f"{shown!r}: a webhook URL may not carry userinfo (user:password@)")
    if not parts.hostname:
        raise InvalidRequest("reply_to", f"{shown!r}: a webhook URL needs a host")
    if parts.fragment:
        raise InvalidRequest("reply_to", f"{shown!r}: a webhook URL may not have a #fragment")
    host = parts.hostname.lower()
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = tuple(policy.checked_addresses(host, port, resolver)) if check_host else ()
    return WebhookURL(text, parts.scheme, host, port, addresses)
