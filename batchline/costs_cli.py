"""`batchline costs`: what was spent, per day, tenant and model, against standard prices."""

from __future__ import annotations

import argparse
from collections import defaultdict

from batchline.config.settings import Settings
from batchline.keys import Keys
from batchline.redis_client import connect
from batchline.reports import cost_rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", choices=["day", "tenant", "model", "all"], default="all",
                        help="group by (default: every day x tenant x model row)")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    settings = Settings.from_env()
    client = connect(settings.redis_url)
    rows = cost_rows(client, Keys(settings.key_prefix))
    client.close()
    groups: dict[tuple[str, ...], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for r in rows:
        key = {"day": (r.day,), "tenant": (r.tenant,), "model": (r.model,), "all": (r.day, r.tenant, r.model)}[args.by]
        g = groups[key]
        g[0] += r.requests
        g[1] += r.batch_usd
        g[2] += r.standard_usd
    columns = {"day": ["day"], "tenant": ["tenant"], "model": ["model"], "all": ["day", "tenant", "model"]}[args.by]
    table = Table(title="batchline costs (succeeded requests; errored, canceled, expired cost nothing)")
    for c in [*columns, "requests", "spent (batch)", "at standard prices", "saved"]:
        table.add_column(c, justify="right" if c not in columns else "left")
    total = [0, 0.0, 0.0]
    for key, (n, spent, standard) in sorted(groups.items()):
        table.add_row(*key, f"{int(n):,}", f"${spent:,.4f}", f"${standard:,.4f}", f"${standard - spent:,.4f}")
        total = [total[0] + n, total[1] + spent, total[2] + standard]
    table.add_row(*(["total"] + [""] * (len(columns) - 1)), f"{int(total[0]):,}", f"${total[1]:,.4f}",
                  f"${total[2]:,.4f}", f"${total[2] - total[1]:,.4f}")
    Console().print(table)
    return 0
