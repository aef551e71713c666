"""`batchline tenants add|list|rotate|revoke|set|webhook-secret`: manage tenants, their API keys and
their webhook signing secrets.

`add` and `rotate` print the new key alone on the last line of their output (for scripts:
`KEY=$(batchline tenants add svc | tail -n1)`); it is shown this once and stored only as a hash.
`webhook-secret` prints a new signing secret (`whsec_...`) the same way; the previous ones keep
signing for the grace period, so a receiver can switch over without losing a delivery.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from batchline.config.settings import Settings
from batchline.errors import InvalidRequest
from batchline.keys import Keys
from batchline.redis_client import connect
from batchline.tenants import Tenant, TenantStore, WebhookSecrets


def _limit_flags(p: argparse.ArgumentParser, defaults: bool) -> None:
    d: Any = None if defaults else argparse.SUPPRESS
    p.add_argument("--max-queued", type=int, default=d, help="requests queued or in flight at most")
    p.add_argument("--max-queued-bytes", type=int, default=d, help="bytes of requests queued or in flight at most")
    p.add_argument(
        "--monthly-budget-usd",
        type=float,
        default=d,
        help="refuse new work once this month's spend (cost ledger, UTC) reaches this",
    )
    p.add_argument(
        "--realtime-budget-usd",
        type=float,
        default=d,
        help="real-time spend per month (UTC) for deadline requests; past it they wait for their batch, "
        "reported late (docs/deadlines.md)",
    )
    p.add_argument(
        "--weight",
        type=int,
        default=1 if defaults else argparse.SUPPRESS,
        help="share of each batch under contention (fair share); default 1",
    )
    p.add_argument(
        "--reply-to",
        action="append",
        default=[] if defaults else argparse.SUPPRESS,
        metavar="PATTERN",
        help="reply target pattern the tenant may name, e.g. 'redis-stream:extract-*' (repeatable; "
        "default none: results are read back through the gateway)",
    )


def _rotation_flags(p: argparse.ArgumentParser, grace_help: str) -> None:
    p.add_argument("name")
    p.add_argument("--grace-seconds", type=float, default=None, help=grace_help)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="create a tenant; prints its API key on the last line")
    add.add_argument("name")
    _limit_flags(add, defaults=True)
    lst = sub.add_parser("list", help="tenants with their quotas (never keys)")
    lst.add_argument("--json", action="store_true")
    rot = sub.add_parser("rotate", help="a new key; the old ones keep working for the grace period")
    _rotation_flags(rot, "how long the old keys keep working (default BATCHLINE_KEY_GRACE_SECONDS, 86400)")
    rev = sub.add_parser("revoke", help="every key of the tenant stops working now")
    rev.add_argument("name")
    wh = sub.add_parser("webhook-secret", help="a new webhook signing secret (the first, or a rotation); "
                        "prints it on the last line")
    _rotation_flags(wh, "how long the previous secrets keep signing "
                    "(default BATCHLINE_WEBHOOK_SECRET_GRACE_SECONDS, 86400)")
    st = sub.add_parser("set", help="change quotas, weight or reply-to patterns")
    st.add_argument("name")
    _limit_flags(st, defaults=False)
    st.add_argument(
        "--unlimited",
        action="append",
        default=[],
        choices=["max-queued", "max-queued-bytes", "monthly-budget-usd", "realtime-budget-usd"],
        help="remove a quota",
    )


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("max_queued", "max_queued_bytes", "monthly_budget_usd", "realtime_budget_usd", "weight"):
        if hasattr(args, name):
            out[name] = getattr(args, name)
    if hasattr(args, "reply_to"):
        out["reply_to"] = tuple(args.reply_to)
    for name in getattr(args, "unlimited", []):
        out[name.replace("-", "_")] = None
    return out


def _describe(t: Tenant) -> str:
    def q(v: object) -> str:
        return "unlimited" if v is None else str(v)

    return (
        f"tenant {t.name}: max_queued={q(t.max_queued)} max_queued_bytes={q(t.max_queued_bytes)} "
        f"monthly_budget_usd={q(t.monthly_budget_usd)} realtime_budget_usd={q(t.realtime_budget_usd)} "
        f"weight={t.weight} "
        f"reply_to={','.join(t.reply_to) or 'none'}{' REVOKED' if t.revoked else ''}"
    )


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    client = connect(settings.redis_url, settings.key_prefix)
    store = TenantStore(client, Keys(settings.key_prefix), settings.key_grace_seconds)
    try:
        if args.action == "add":
            key = store.add(Tenant(args.name, **_changes(args)))
            print(_describe(store.get(args.name)))
            print("API key (shown once; store it now):")
            print(key)
        elif args.action == "list":
            tenants = store.all()
            secrets = WebhookSecrets(client, store.keys)
            if args.json:
                print(json.dumps([{**t.public(), "webhook_secrets": secrets.fingerprints(t.name)} for t in tenants],
                                 indent=2))
            for t in [] if args.json else tenants:
                print(_describe(t) + f" keys={len(t.public()['keys'])}")
        elif args.action == "rotate":
            key = store.rotate(args.name, args.grace_seconds)
            grace = settings.key_grace_seconds if args.grace_seconds is None else args.grace_seconds
            print(f"tenant {args.name}: new key; the previous keys keep working for {grace:g} s")
            print(key)
        elif args.action == "webhook-secret":
            store.get(args.name)  # a tenant of that name, or UnknownTenant
            grace = settings.webhook_secret_grace_seconds if args.grace_seconds is None else args.grace_seconds
            secret = WebhookSecrets(client, store.keys, settings.webhook_secret_grace_seconds).rotate(args.name, grace)
            print(f"tenant {args.name}: new webhook secret; the previous ones keep signing for {grace:g} s")
            print("webhook secret (shown once; give it to the receiver now):")
            print(secret)
        elif args.action == "revoke":
            store.revoke(args.name)
            print(f"tenant {args.name}: every key revoked")
        else:
            print(_describe(store.set(args.name, **_changes(args))))
    except InvalidRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        client.close()
    return 0
