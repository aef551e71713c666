"""`batchline costs`: what was spent, per day, tenant and model, against standard prices;
`batchline costs --quote MODEL ...`: what a given usage costs, from the same code that costs results."""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from typing import Any

from batchline.config.settings import Settings
from batchline.costs import PriceTable, Usage
from batchline.errors import ConfigError
from batchline.keys import Keys
from batchline.redis_client import connect
from batchline.reports import cost_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--by",
        choices=["day", "tenant", "model", "all"],
        default="all",
        help="group by (default: every day x tenant x model row)",
    )
    quote = parser.add_argument_group("quote", "price a usage instead of reporting spend")
    quote.add_argument("--quote", metavar="MODEL", help="model id to price (an alias or a dated id)")
    for flag in ("input-tokens", "output-tokens", "cache-write-5m", "cache-write-1h", "cache-read", "web-searches"):
        quote.add_argument(f"--{flag}", type=int, default=0, metavar="N", help=f"{flag.replace('-', ' ')} (default 0)")
    quote.add_argument("--inference-geo", default=None, help="e.g. 'us' (US-only inference, 1.1x on 4.6 and later)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if args.quote is not None:
        return quote(args, settings)
    return report(args, settings)


def quote(args: argparse.Namespace, settings: Settings) -> int:
    try:
        table = PriceTable.load(settings.prices_file)
    except ConfigError as exc:
        print(f"batchline costs: {exc}", file=sys.stderr)
        return 2
    counts = {
        "input_tokens": args.input_tokens,
        "output_tokens": args.output_tokens,
        "cache_write_5m": args.cache_write_5m,
        "cache_write_1h": args.cache_write_1h,
        "cache_read": args.cache_read,
        "web_searches": args.web_searches,
    }
    negative = [name for name, n in counts.items() if n < 0]
    if negative:
        print(f"batchline costs: --{negative[0].replace('_', '-')} must be >= 0", file=sys.stderr)
        return 2
    cost = table.cost(args.quote, Usage(**counts, inference_geo=args.inference_geo))
    if cost is None:
        where = f"config/prices.json or {settings.prices_file}" if settings.prices_file else "config/prices.json"
        print(
            f"batchline costs: model {args.quote!r} has no price in {where}; add it with a "
            "BATCHLINE_PRICES_FILE (no other model's price is used in its place)",
            file=sys.stderr,
        )
        return 2
    batch_usd, standard_usd = cost.batch_micros / 1e6, cost.standard_micros / 1e6
    if args.json:
        print(json.dumps({"model": args.quote, "batch_usd": batch_usd, "standard_usd": standard_usd}))
    else:
        print(f"{args.quote}: ${batch_usd:,.6f} in a batch, ${standard_usd:,.6f} at standard prices")
    return 0


def report(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    client = connect(settings.redis_url, settings.key_prefix)
    rows = cost_rows(client, Keys(settings.key_prefix))
    late = late_by_tenant(client, Keys(settings.key_prefix))
    client.close()
    # per group: requests, batch $, standard $, unpriced, real-time requests, real-time $, wasted requests, wasted $
    groups: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0, 0, 0.0, 0, 0.0])
    for r in rows:
        key = {"day": (r.day,), "tenant": (r.tenant,), "model": (r.model,), "all": (r.day, r.tenant, r.model)}[args.by]
        values = (
            r.requests,
            r.batch_usd,
            r.standard_usd,
            r.unpriced,
            r.realtime_requests,
            r.realtime_usd,
            r.wasted_requests,
            r.wasted_usd,
        )
        groups[key] = [a + b for a, b in zip(groups[key], values, strict=True)]
    columns = {"day": ["day"], "tenant": ["tenant"], "model": ["model"], "all": ["day", "tenant", "model"]}[args.by]
    if args.json:
        print(
            json.dumps(
                [
                    {
                        **dict(zip(columns, key, strict=True)),
                        "requests": int(n),
                        "batch_usd": spent,
                        "standard_usd": standard,
                        "unpriced_requests": int(unpriced),
                        "realtime_requests": int(rt_n),
                        "realtime_usd": rt,
                        "wasted_requests": int(w_n),
                        "wasted_usd": wasted,
                        "spent_usd": spent + rt + wasted,
                        **({"deadline_late": late.get(key[0], 0)} if args.by == "tenant" else {}),
                    }
                    for key, (n, spent, standard, unpriced, rt_n, rt, w_n, wasted) in sorted(groups.items())
                ]
            )
        )
        return 0
    table = Table(title="batchline costs (succeeded requests; errored, canceled, expired cost nothing)")
    heads = [
        "requests",
        "spent (batch)",
        "at standard prices",
        "saved",
        "unpriced",
        "real-time",
        "spent (real-time)",
        "wasted",
        "spent (all)",
    ]
    for c in [*columns, *heads]:
        table.add_column(c, justify="right" if c not in columns else "left")
    total = [0.0] * 8
    for key, g in sorted(groups.items()):
        table.add_row(*key, *_cells(g))
        total = [a + b for a, b in zip(total, g, strict=True)]
    table.add_row(*(["total"] + [""] * (len(columns) - 1)), *_cells(total))
    console = Console(width=200)
    console.print(table)
    console.print(
        "real-time: answers of the Messages API for deadline requests, at standard prices; wasted: "
        "answers paid for and not delivered (a hedge's loser; docs/deadlines.md)"
    )
    if late:
        console.print(
            "deadline requests left to their batch, their tenant's real-time budget spent (late): "
            + ", ".join(f"{t}: {n:,}" for t, n in sorted(late.items()))
        )
    missing = sorted({r.model for r in rows if r.unpriced})
    if missing:
        console.print(f"unpriced models (not in the totals; add them with BATCHLINE_PRICES_FILE): {', '.join(missing)}")
    return 0


def late_by_tenant(client: Any, keys: Keys) -> dict[str, int]:
    """Deadline requests that waited for their batch past their tenant's real-time budget, per tenant."""
    return {
        name.decode().split(":", 1)[1]: int(n) for name, n in client.hscan_iter(keys.counters, match="deadline_late:*")
    }


def _cells(g: list[float]) -> list[str]:
    n, spent, standard, unpriced, rt_n, rt, w_n, wasted = g
    return [
        f"{int(n):,}",
        f"${spent:,.4f}",
        f"${standard:,.4f}",
        f"${standard - spent:,.4f}",
        f"{int(unpriced):,}",
        f"{int(rt_n):,}",
        f"${rt:,.4f}",
        f"{int(w_n):,} ${wasted:,.4f}",
        f"${spent + rt + wasted:,.4f}",
    ]
