"""Price arithmetic against hand-computed figures: every model family, every usage field.

Figures are micro-dollars: tokens x USD per million tokens. Each case states the sum it checks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchline.costs import Cost, PriceTable, Usage
from batchline.errors import ConfigError

TABLE = PriceTable.load()


def std_and_batch(standard: float, tools: float = 0.0) -> Cost:
    """Tokens are halved in a batch; server-tool fees are not."""
    return Cost(round(standard / 2 + tools), round(standard + tools))


@pytest.mark.parametrize(
    ("model", "usage", "standard"),
    [
        # Opus 4.5 by its dated id: 1M in x $5 + 100k out x $25
        ("claude-opus-4-5-20251101", Usage(input_tokens=1_000_000, output_tokens=100_000), 5_000_000 + 2_500_000),
        ("claude-opus-4-5", Usage(input_tokens=1_000_000, output_tokens=100_000), 5_000_000 + 2_500_000),
        # Opus 4 and 4.1 are $15 / $75: 200k x 15 + 10k x 75
        ("claude-opus-4-1", Usage(input_tokens=200_000, output_tokens=10_000), 3_000_000 + 750_000),
        ("claude-opus-4-20250514", Usage(input_tokens=200_000, output_tokens=10_000), 3_000_000 + 750_000),
        # Opus 4.6 .. 5: $5 / $25; 5m write $6.25, 1h write $10, read $0.50
        (
            "claude-opus-4-6",
            Usage(cache_write_5m=100_000, cache_write_1h=100_000, cache_read=1_000_000),
            625_000 + 1_000_000 + 500_000,
        ),
        ("claude-opus-4-8", Usage(output_tokens=40_000), 1_000_000),
        ("claude-opus-5", Usage(input_tokens=2_000), 10_000),
        # Opus 5.5: $4 / $20 / $5 / $8 / $0.20
        (
            "claude-opus-5-5",
            Usage(input_tokens=1_000, output_tokens=1_000_000, cache_read=10_000),
            4_000 + 20_000_000 + 2_000,
        ),
        # Fable 5.1: $10 / $50, read $0.25; Fable 5 read $1
        ("claude-fable-5-1", Usage(cache_read=1_000_000, output_tokens=1_000), 250_000 + 50_000),
        ("claude-fable-5", Usage(cache_read=1_000_000, cache_write_1h=1_000), 1_000_000 + 20_000),
        # Sonnet 4.6: 5m $3.75, 1h $6, read $0.30
        (
            "claude-sonnet-4-6",
            Usage(cache_write_5m=100_000, cache_write_1h=100_000, cache_read=1_000_000),
            375_000 + 600_000 + 300_000,
        ),
        # Sonnet 4.5 within 200k of prompt: base prices (exactly 200k is not over)
        ("claude-sonnet-4-5-20250929", Usage(input_tokens=200_000, output_tokens=10_000), 600_000 + 150_000),
        # ... and over it: every token at long-context prices ($6 in, $22.50 out, $0.60 read)
        (
            "claude-sonnet-4-5-20250929",
            Usage(input_tokens=150_000, cache_read=60_000, output_tokens=10_000),
            900_000 + 36_000 + 225_000,
        ),
        ("claude-sonnet-4-20250514", Usage(input_tokens=100_000, cache_write_5m=150_000), 600_000 + 1_125_000),
        # Sonnet 5 and 5.5: $2 / $10; reads $0.20 and $0.10
        ("claude-sonnet-5", Usage(input_tokens=1_000_000, cache_read=1_000_000), 2_000_000 + 200_000),
        ("claude-sonnet-5-5", Usage(output_tokens=100_000, cache_read=1_000_000), 1_000_000 + 100_000),
        ("claude-3-7-sonnet-20250219", Usage(input_tokens=10_000, output_tokens=10_000), 30_000 + 150_000),
        # Haiku 4.5 by its dated id: $1 / $5, 1h write $2, read $0.10
        (
            "claude-haiku-4-5-20251001",
            Usage(input_tokens=1_000, output_tokens=1_000, cache_write_1h=1_000_000, cache_read=1_000_000),
            1_000 + 5_000 + 2_000_000 + 100_000,
        ),
        # Haiku 5.5: $0.10 / $0.50 up to 100k of prompt; over it $0.50 / $2.50 on every token
        ("claude-haiku-5-5", Usage(input_tokens=100_000, output_tokens=2_000), 10_000 + 1_000),
        ("claude-haiku-5-5", Usage(input_tokens=120_000, output_tokens=2_000), 60_000 + 5_000),
        ("claude-3-5-haiku-20241022", Usage(input_tokens=1_000_000, cache_write_5m=1_000_000), 800_000 + 1_000_000),
        ("claude-3-haiku-20240307", Usage(input_tokens=1_000_000, output_tokens=1_000_000), 250_000 + 1_250_000),
        ("claude-3-opus-20240229", Usage(cache_write_5m=1_000, cache_read=1_000), 18_750 + 1_500),
    ],
)
def test_each_family_and_usage_field(model, usage, standard):
    assert TABLE.cost(model, usage) == std_and_batch(standard)


def test_us_only_inference_costs_1_1x_on_4_6_and_later_only():
    us = Usage(input_tokens=1_000_000, output_tokens=100_000, inference_geo="us")
    assert TABLE.cost("claude-opus-4-6", us) == std_and_batch((5_000_000 + 2_500_000) * 1.1)
    assert TABLE.cost("claude-sonnet-4-6", us) == std_and_batch((3_000_000 + 1_500_000) * 1.1)
    assert TABLE.cost("claude-haiku-4-5", us) == std_and_batch(1_000_000 + 500_000)  # no geo price before 4.6
    assert TABLE.cost("claude-opus-4-6", Usage(input_tokens=1_000_000, inference_geo="global")) == std_and_batch(5e6)


def test_web_searches_cost_10_dollars_per_thousand_undiscounted():
    usage = Usage(input_tokens=1_000_000, web_searches=3)  # $3 of input + 3 x $0.01
    assert TABLE.cost("claude-sonnet-4-6", usage) == Cost(1_500_000 + 30_000, 3_000_000 + 30_000)


def test_usage_from_the_api_reads_every_billed_field():
    raw = {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 100,
        "cache_creation": {"ephemeral_5m_input_tokens": 60, "ephemeral_1h_input_tokens": 40},
        "server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 5},
        "inference_geo": "us",
    }
    assert Usage.from_api(raw) == Usage(10, 20, 60, 40, 30, 2, "us")
    # without the TTL split every cache write is a 5-minute write
    assert Usage.from_api({"cache_creation_input_tokens": 500}).cache_write_5m == 500
    assert Usage.from_api({"input_tokens": None, "output_tokens": "7"}) == Usage()
    cost = TABLE.cost_micros("claude-opus-4-6", raw)
    expected = (10 * 5 + 20 * 25 + 60 * 6.25 + 40 * 10 + 30 * 0.5) * 1.1  # = 1474.0 + 0.1 x 1474.0
    assert cost == Cost(round(expected / 2 + 20_000), round(expected + 20_000))


def test_a_model_without_a_price_is_never_costed_as_another():
    assert TABLE.cost("claude-haiku-4-5-20991231", Usage(input_tokens=1_000)) is None  # not a prefix match
    assert TABLE.cost("claude-sonnet-9", Usage(input_tokens=1_000)) is None
    assert TABLE.cost_micros("", {"input_tokens": 5}) is None


def test_the_table_lists_current_and_recent_ids_each_with_all_prices():
    for model in (
        "claude-opus-4-5",
        "claude-opus-4-6",
        "claude-opus-4-7",
        "claude-opus-4-1",
        "claude-opus-4-0",
        "claude-sonnet-4-5-20250929",
        "claude-sonnet-4-5",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "claude-haiku-4-5-20251001",
        "claude-opus-5-5",
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
    ):
        price = TABLE.price(model)
        assert price is not None, model
        assert (
            min(
                price.base.input,
                price.base.output,
                price.base.cache_write_5m,
                price.base.cache_write_1h,
                price.base.cache_read,
            )
            > 0
        )
    data = json.loads(Path(__file__).parents[2].joinpath("config/prices.json").read_text())
    source = data["_source"]
    assert source["as_of"] and source["verified"] and source["not_verified_on_anthropic_pages"]
    assert all("2026" in family["source"] for family in data["families"].values())  # each says where and when


def test_an_operators_file_extends_and_overrides(tmp_path):
    extra = tmp_path / "prices.json"
    extra.write_text(
        json.dumps({"models": {"claude-custom-1": {"input": 2.0, "output": 8.0}, "claude-haiku-4-5": "opus-4.5"}})
    )
    table = PriceTable.load(str(extra))
    # cache prices left out of an operator's entry take the standard multipliers (1.25x, 2x, 0.1x)
    assert table.cost(
        "claude-custom-1", Usage(input_tokens=1_000, cache_write_5m=1_000, cache_write_1h=1_000, cache_read=1_000)
    ) == std_and_batch(2_000 + 2_500 + 4_000 + 200)
    assert table.cost("claude-haiku-4-5", Usage(input_tokens=1_000)) == std_and_batch(5_000)
    assert table.cost("claude-opus-4-6", Usage(input_tokens=1_000)) == std_and_batch(5_000)  # the rest kept
    extra.write_text(json.dumps({"default_model": {"input": 3.0, "output": 15.0}}))
    with pytest.raises(ConfigError, match="default_model"):
        PriceTable.load(str(extra))
    extra.write_text(json.dumps({"models": {"claude-x": "no-such-family"}}))
    with pytest.raises(ConfigError, match=r"models\.claude-x"):
        PriceTable.load(str(extra))
    extra.write_text(json.dumps({"models": {"claude-x": {"input": 1, "ouput": 1}}}))
    with pytest.raises(ConfigError, match="ouput"):
        PriceTable.load(str(extra))
    extra.write_text(json.dumps({"models": {"claude-x": {"input": -1, "output": 1}}}))
    with pytest.raises(ConfigError, match=r"models\.claude-x\.input"):
        PriceTable.load(str(extra))
