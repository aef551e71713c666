"""Metrics label at most N tenants (the largest) and fold the rest into `other`: series stay bounded
however many tenants there are. Real intake into the session Redis, the real collector."""

from __future__ import annotations

from batchline.metrics import PipelineCollector
from batchline.producers.producer import Producer
from batchline.workers.context import Context


def test_metrics_label_the_largest_tenants_and_fold_the_rest(settings):
    producer = Producer.from_settings(settings)
    sizes = {f"t{i:03d}": 1 + i % 7 for i in range(120)}  # 120 tenants, 1-7 requests each
    sizes["big-a"], sizes["big-b"] = 40, 30
    params = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}
    for tenant, n in sizes.items():
        assert producer.submit_many([{"custom_id": f"r-{i}", "params": params} for i in range(n)],
                                    tenant=tenant).accepted == n
    ctx = Context(settings)
    families = {f.name: f for f in PipelineCollector(ctx.redis, ctx.keys, 1, max_tenants=5).collect()}
    accepted = {s.labels["tenant"]: s.value for s in families["batchline_requests_accepted"].samples
                if s.name.endswith("_total")}
    assert len(accepted) == 6 and "other" in accepted
    assert {"big-a", "big-b"} <= set(accepted)  # the largest keep their label
    assert sum(accepted.values()) == sum(sizes.values())  # nothing lost in the fold
    top = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert set(accepted) - {"other"} == {t for t, _ in top}
    outstanding = {s.labels["tenant"]: s.value for s in families["batchline_requests_outstanding"].samples}
    assert set(outstanding) == set(accepted) and sum(outstanding.values()) == sum(sizes.values())
