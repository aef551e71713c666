"""Operating it: Flower over real workers, Prometheus metrics, costs, status, structured logs."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from batchline.config.settings import Settings
from batchline.local_services import free_port, wait_for_port
from batchline.producers.producer import Producer
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.e2e


def get(url: str, auth: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "batchline.cli", *args], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr + out.stdout
    return out.stdout


def test_flower_metrics_costs_status_and_logs(e2e_env, processes):
    env = {**e2e_env, "BATCHLINE_S3_BUCKET": "", "FLOWER_BASIC_AUTH": "ops:flower-pw"}
    flower_port, metrics_port = free_port(), free_port()
    flower = processes(["flower", "--port", str(flower_port), "--address", "127.0.0.1"], env)
    metrics = processes(["metrics", "--port", str(metrics_port), "--host", "127.0.0.1"], env)
    wait_for_port(flower_port, timeout=60, proc=flower.proc)
    wait_for_port(metrics_port, timeout=30, proc=metrics.proc)
    worker = processes(["worker", "--role", "all", "--concurrency", "2"], env)
    beat = processes(["beat"], env)
    producer = Producer.from_settings(Settings.from_env(env))
    for tenant in ("alpha", "beta"):
        producer.submit_many(({"custom_id": f"op-{i}", "params": {
            "model": "claude-haiku-4-5", "max_tokens": 64,
            "messages": [{"role": "user", "content": f"Secret prompt text number {i}"}]}} for i in range(150)),
            tenant=tenant, reply_to=f"redis-stream:ops:{tenant}")
    # costs of a dated model id and of a model the price table does not list
    models = {"dated": "claude-sonnet-4-5-20250929", "unpriced": "claude-unpriced-e2e-1"}
    for kind, model in models.items():
        producer.submit_many(({"custom_id": f"{kind}-{i}", "params": {
            "model": model, "max_tokens": 64, "messages": [{"role": "user", "content": f"cost {kind} {i}"}]}}
            for i in range(20)), tenant="gamma", reply_to="redis-stream:ops:gamma")
    wait_for(lambda: sum(producer.redis.xlen(f"ops:{t}") for t in ("alpha", "beta", "gamma")) >= 340, 90,
             "delivery", [worker, beat])

    # Flower: auth enforced; the project's workers and tasks visible through its HTTP API
    assert get(f"http://127.0.0.1:{flower_port}/api/workers")[0] == 401
    def flower_sees_tasks() -> bool:
        status, body = get(f"http://127.0.0.1:{flower_port}/api/tasks", "ops:flower-pw")
        names = {t.get("name") for t in json.loads(body).values()} if status == 200 else set()
        return {"batchline.aggregator.pack", "batchline.poller.poll", "batchline.results.collect"} <= names
    wait_for(flower_sees_tasks, 30, "Flower to list the project's tasks", [flower])
    status, body = get(f"http://127.0.0.1:{flower_port}/api/workers?refresh=1", "ops:flower-pw")
    assert status == 200 and any(name.startswith("all-") for name in json.loads(body))

    # Metrics from Redis
    status, body = get(f"http://127.0.0.1:{metrics_port}/metrics")
    text = body.decode()
    assert status == 200
    assert 'batchline_results_delivered_total{outcome="succeeded",tenant="alpha"} 150.0' in text
    assert 'batchline_requests_accepted_total{tenant="beta"} 150.0' in text
    assert "batchline_submission_paused 0.0" in text
    cost_line = next(line for line in text.splitlines() if line.startswith('batchline_cost_usd_total{model="claude-haiku-4-5",tenant="alpha"}'))
    std_line = next(line for line in text.splitlines() if line.startswith('batchline_standard_cost_usd_total{model="claude-haiku-4-5",tenant="alpha"}'))
    spent, standard = float(cost_line.split()[-1]), float(std_line.split()[-1])
    assert spent > 0 and abs(standard - 2 * spent) <= 150e-6  # batch price is half, rounded per request to 1 micro-dollar

    # Costs: each request's cost in its status, totals per tenant match the sum
    statuses = [producer.status(f"op-{i}", tenant="alpha") for i in range(150)]
    assert abs(sum(s["cost_usd"] for s in statuses) - spent) < 1e-6
    out = cli(env, "costs", "--by", "tenant")
    assert "alpha" in out and "beta" in out and "total" in out

    # the dated id is costed at its own prices, from each result's usage; the unpriced model is counted apart
    from batchline.costs import PriceTable

    table, expected = PriceTable.load(), 0
    for _, fields in producer.redis.xrange("ops:gamma"):
        message = json.loads(fields[b"result"])["message"]
        if message["model"] == models["dated"]:
            cost = table.cost_micros(message["model"], message["usage"])
            assert cost is not None
            expected += cost.batch_micros
    dated = next(line for line in text.splitlines()
                 if line.startswith(f'batchline_cost_usd_total{{model="{models["dated"]}",tenant="gamma"}}'))
    assert expected > 0 and abs(float(dated.split()[-1]) * 1e6 - expected) < 1
    assert f'batchline_unpriced_requests_total{{model="{models["unpriced"]}",tenant="gamma"}} 20.0' in text
    assert f'model="{models["unpriced"]}"' not in "".join(
        line for line in text.splitlines() if line.startswith("batchline_cost_usd_total"))
    st = producer.status("unpriced-3", tenant="gamma")
    assert st["outcome"] == "succeeded" and st["unpriced"] is True and st["cost_usd"] is None
    rows = json.loads(cli(env, "costs", "--by", "model", "--json"))
    by_model = {r["model"]: r for r in rows}
    assert by_model[models["unpriced"]]["unpriced_requests"] == 20 and by_model[models["unpriced"]]["batch_usd"] == 0
    assert abs(by_model[models["dated"]]["batch_usd"] * 1e6 - expected) < 1
    assert "unpriced models" in cli(env, "costs", "--by", "model")

    # Status: the pipeline view and one request with its history
    out = cli(env, "status", "op-7", "--tenant", "beta")
    st = json.loads(out)
    assert st["state"] == "delivered" and st["outcome"] == "succeeded" and len(st["history"]) == 1
    out = cli(env, "status")
    assert "pending" in out and "open batches" in out

    # Logs: JSON, stable event names, no secrets, no prompt text
    logs = worker.log() + beat.log() + flower.log() + metrics.log()
    events = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    names = {e.get("event") for e in events}
    assert {"batch.claimed", "batch.submitted", "batch.ended", "batch.delivered"} <= names
    assert all("batch_id" in e for e in events if e.get("event", "").startswith("batch."))
    unpriced_logs = [e for e in events if e.get("event") == "cost.unpriced_model"]
    assert [e["model"] for e in unpriced_logs] == [models["unpriced"]]  # once, across the worker's processes
    for secret in ("sk-e2e-secret-key", "testing-secret-value", "flower-pw", "Secret prompt text"):
        assert secret not in logs, secret


def test_health_probe_sees_a_worker_that_stops_consuming(e2e_env, processes):
    import os
    import signal

    env = {**e2e_env, "BATCHLINE_S3_BUCKET": ""}
    worker = processes(["worker", "--role", "results", "--name", "probe-me@%h", "--concurrency", "1"], env)

    def health(timeout: str) -> int:
        return subprocess.run([sys.executable, "-m", "batchline.cli", "health", "--node", "probe-me@%h",
                               "--timeout", timeout], env=env, capture_output=True, timeout=90).returncode

    wait_for(lambda: health("5") == 0, 60, "the worker to answer its first ping", [worker])
    os.killpg(worker.proc.pid, signal.SIGSTOP)  # alive as a process, consuming nothing
    try:
        assert health("4") == 1
    finally:
        os.killpg(worker.proc.pid, signal.SIGCONT)
    assert health("20") == 0
