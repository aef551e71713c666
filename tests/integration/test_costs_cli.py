"""`batchline costs --quote` (the same arithmetic as delivered results) and `batchline submit --dry-run`."""

from __future__ import annotations

import json

import pytest

from batchline import cli
from batchline.costs import PriceTable, Usage
from batchline.producers.producer import Producer


@pytest.fixture
def env(settings, monkeypatch):
    monkeypatch.setenv("BATCHLINE_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("BATCHLINE_KEY_PREFIX", settings.key_prefix)
    monkeypatch.delenv("BATCHLINE_PRICES_FILE", raising=False)
    return settings


def test_quote_prints_batch_and_standard_cost(env, capsys):
    args = ["costs", "--quote", "claude-sonnet-4-5-20250929", "--input-tokens", "150000", "--output-tokens", "10000",
            "--cache-read", "60000", "--cache-write-5m", "1000", "--cache-write-1h", "2000", "--web-searches", "4",
            "--json"]
    assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    # 213,000 prompt tokens > 200k: long-context prices on every token; searches $0.01 each, undiscounted
    standard = 150_000 * 6 + 10_000 * 22.5 + 60_000 * 0.6 + 1_000 * 7.5 + 2_000 * 12
    assert out == {"model": "claude-sonnet-4-5-20250929", "batch_usd": (standard / 2 + 40_000) / 1e6,
                   "standard_usd": (standard + 40_000) / 1e6}
    same = PriceTable.load().cost("claude-sonnet-4-5-20250929", Usage(150_000, 10_000, 1_000, 2_000, 60_000, 4))
    assert same is not None and round(out["batch_usd"] * 1e6) == same.batch_micros
    assert cli.main(["costs", "--quote", "claude-haiku-4-5", "--input-tokens", "1000000"]) == 0
    assert "$0.500000 in a batch, $1.000000 at standard prices" in capsys.readouterr().out


def test_quote_of_an_unknown_model_exits_2_naming_it(env, capsys):
    assert cli.main(["costs", "--quote", "claude-nonesuch-9", "--input-tokens", "10"]) == 2
    err = capsys.readouterr().err
    assert "'claude-nonesuch-9' has no price" in err and "BATCHLINE_PRICES_FILE" in err


def line(cid: str, model: str = "claude-opus-4-6", **extra) -> str:
    return json.dumps({"custom_id": cid, "params": {"model": model, "max_tokens": 8,
                                                    "messages": [{"role": "user", "content": "x" * 400}]}, **extra})


def test_dry_run_checks_like_intake_estimates_and_stores_nothing(env, redis_client, tmp_path, capsys):
    producer = Producer.from_settings(env)
    stored = json.loads(line("old"))
    assert producer.submit("old", stored["params"], tenant="main") == "accepted"
    keys_before = sorted(redis_client.keys("*"))
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([
        line("n-1"), line("n-2"), "{oops", line("old"),  # 'old' is already stored: a duplicate
        line("n-1"),  # repeats line 1: a duplicate
        line("n-3", betas=["output-300k-2026-03-24"]),
        json.dumps({"custom_id": "old", "params": {**stored["params"], "max_tokens": 9}}),  # conflict
        line("n-4").replace('"max_tokens": 8', '"max_tokens": 8, "stream": true'),  # refused in a batch
        line("n-5", model="claude-unreleased-1"),
    ]) + "\n")
    code = cli.main(["submit", str(path), "--tenant", "main", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 1  # some lines would be refused
    assert "would accept: 4  duplicate: 2  rejected: 3" in out
    assert "line 3: -: line: invalid JSON" in out and "line 7: old: custom_id: conflict" in out
    assert "line 8: n-4: params.stream" in out
    size = len(json.dumps(json.loads(line("n-1"))["params"], sort_keys=True, separators=(",", ":")))
    micros = 3 * (size // 4) * 5  # three opus-4-6 requests at $5 per million input tokens
    assert f"estimated input cost: ${micros / 2e6:,.4f} in a batch (${micros / 1e6:,.4f} at standard prices)" in out
    assert "claude-unreleased-1 (1 requests)" in out
    assert sorted(redis_client.keys("*")) == keys_before  # nothing stored
