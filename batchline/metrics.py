"""Prometheus metrics computed from Redis at scrape time, so any replica can serve them.

`batchline metrics --port 9464` serves them on /metrics.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Mapping
from typing import Any

from batchline.config.settings import Settings
from batchline.keys import Keys
from batchline.redis_client import connect
from batchline.reports import cost_rows, snapshot

OTHER = "other"  # the label of every tenant beyond the largest `max_tenants`


def fold(values: Mapping[tuple[str, ...], float], keep: set[str]) -> dict[tuple[str, ...], float]:
    """Sum series whose first label (the tenant) is not in `keep` into one labelled `other`."""
    out: dict[tuple[str, ...], float] = {}
    for labels, n in values.items():
        key = labels if labels[0] in keep else (OTHER, *labels[1:])
        out[key] = out.get(key, 0) + n
    return out


class PipelineCollector:
    """A prometheus_client collector: every scrape reads one snapshot of the pipeline. At most
    `max_tenants` tenants (those with the most accepted requests) get their own label; the rest are
    summed under `other`, so 100,000 tenants cost as many series as `max_tenants` + 1."""

    def __init__(self, client: Any, keys: Keys, in_flight_limit: int, max_tenants: int = 50) -> None:
        self.client, self.keys, self.limit, self.max_tenants = client, keys, in_flight_limit, max_tenants

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = snapshot(self.client, self.keys)

        def gauge(name: str, doc: str, value: float) -> Any:
            return GaugeMetricFamily(f"batchline_{name}", doc, value=value)

        yield gauge("pending_requests", "Requests waiting to be packed", snap.pending)
        yield gauge("pending_bytes", "Create-body bytes of the waiting requests", snap.pending_bytes)
        yield gauge("oldest_pending_age_seconds", "Age of the oldest waiting request", snap.oldest_pending_age_s)
        yield gauge("open_batches", "Provider batches in progress", snap.open_batches)
        yield gauge("requests_in_flight", "Requests in open batches (provider queue)", snap.in_flight)
        yield gauge("requests_in_flight_limit", "BATCHLINE_MAX_REQUESTS_IN_FLIGHT", self.limit)
        cap = self.client.get(self.keys.in_flight_cap)  # set after a queue-full 429, until batches end
        yield gauge("requests_in_flight_effective_limit", "The in-flight limit in force (lower after a queue-full 429)",
                    min(self.limit, int(cap)) if cap is not None else self.limit)
        yield gauge("batches_awaiting_delivery", "Ended batches whose results are not all delivered",
                    snap.awaiting_delivery)
        yield gauge("submission_paused", "1 while an account-level error pauses submission", 1 if snap.paused else 0)
        yield gauge("requests_undeliverable", "Final outcomes their reply target refused (batchline redeliver)",
                    snap.undeliverable)
        yield gauge("outbox_requests", "Webhook and SQS sends waiting or in progress (state delivering)", snap.outbox)
        yield gauge("outbox_due_requests", "Outbox sends due now: neither being sent nor waiting for a retry",
                    snap.outbox_due)
        yield gauge("outbox_oldest_due_age_seconds", "How long the most overdue outbox send has been due",
                    snap.oldest_outbox_due_age_s)
        yield gauge("watchdog_alerts", "Stuck batches and results nearing their 29-day end", len(snap.alerts))
        by_size = sorted(snap.by("accepted").items(), key=lambda kv: (-kv[1], kv[0]))
        keep = {labels[0] for labels, _ in by_size[: self.max_tenants]}
        outstanding = GaugeMetricFamily("batchline_requests_outstanding", "Accepted, not yet settled",
                                        labels=["tenant"])
        for (tenant,), n in sorted(fold({(t,): n for t, n in snap.outstanding_by_tenant().items()}, keep).items()):
            outstanding.add_metric([tenant], n)
        yield outstanding
        accepted = CounterMetricFamily("batchline_requests_accepted", "Requests accepted at intake", labels=["tenant"])
        for (tenant,), n in sorted(fold(snap.by("accepted"), keep).items()):
            accepted.add_metric([tenant], n)
        yield accepted
        delivered = CounterMetricFamily("batchline_results_delivered", "Final outcomes delivered",
                                        labels=["tenant", "outcome"])
        for labels, n in sorted(fold({labels[:2]: n for labels, n in snap.by("delivered").items()}, keep).items()):
            delivered.add_metric(list(labels), n)
        yield delivered
        undeliverable = CounterMetricFamily("batchline_results_undeliverable",
                                            "Final outcomes their reply target refused", labels=["tenant"])
        for (tenant,), n in sorted(fold(snap.by("undeliverable"), keep).items()):
            undeliverable.add_metric([tenant], n)
        yield undeliverable
        redriven = CounterMetricFamily("batchline_requests_redriven", "Requests sent again, by reason",
                                       labels=["reason"])
        for labels, n in snap.by("redriven").items():
            redriven.add_metric([labels[0]], n)
        yield redriven
        api = CounterMetricFamily("batchline_api_calls", "Provider API calls, by role and operation",
                                  labels=["role", "operation"])
        for labels, n in snap.by("api_calls").items():
            api.add_metric(list(labels[:2]), n)
        yield api
        yield CounterMetricFamily("batchline_poll_rounds", "Poll rounds run", value=snap.counters.get("poll_rounds", 0))
        last_round = self.client.hget(self.keys.stats, "poll_round_api_calls")
        yield gauge("poll_round_api_calls", "List and retrieve calls of the last poll round (bounded by "
                    "BATCHLINE_POLL_CALL_BUDGET)", int(last_round or 0))
        cost = CounterMetricFamily("batchline_cost_usd", "Spent at batch prices", labels=["tenant", "model"])
        standard = CounterMetricFamily("batchline_standard_cost_usd", "The same work at standard prices",
                                       labels=["tenant", "model"])
        unpriced = CounterMetricFamily("batchline_unpriced_requests",
                                       "Succeeded requests whose model has no price (not in the cost totals)",
                                       labels=["tenant", "model"])
        totals: dict[tuple[str, str], list[float]] = {}
        for row in cost_rows(self.client, self.keys):
            t = totals.setdefault((row.tenant if row.tenant in keep else OTHER, row.model), [0.0, 0.0, 0])
            t[0] += row.batch_usd
            t[1] += row.standard_usd
            t[2] += row.unpriced
        for (tenant, model), (spent, std, n_unpriced) in sorted(totals.items()):
            if n_unpriced:
                unpriced.add_metric([tenant, model], n_unpriced)
            if n_unpriced and not spent and not std:
                continue
            cost.add_metric([tenant, model], spent)
            standard.add_metric([tenant, model], std)
        yield cost
        yield standard
        yield unpriced


def registry(settings: Settings) -> Any:
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry()
    reg.register(PipelineCollector(connect(settings.redis_url, settings.key_prefix), Keys(settings.key_prefix),
                                   settings.max_requests_in_flight, settings.metrics_max_tenants))
    return reg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="bind address (default 127.0.0.1: the metrics name tenants and costs; pass "
                        "--host 0.0.0.0 explicitly to serve a scraper on another host)")
    parser.add_argument("--port", type=int, default=9464, help="port (default 9464)")


def run(args: argparse.Namespace) -> int:
    from prometheus_client import start_http_server

    start_http_server(args.port, addr=args.host, registry=registry(Settings.from_env()))
    print(f"batchline metrics on http://{args.host}:{args.port}/metrics", flush=True)
    while True:
        time.sleep(3600)
