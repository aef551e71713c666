"""What a request cost, from its actual `usage`, at batch prices and at standard prices (pure).

Amounts are integer micro-dollars, so totals kept in Redis add up exactly: a price in USD per
million tokens times a token count is micro-dollars. A model the table does not list has no cost
(None), never the cost of another model: callers count it as unpriced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from batchline.errors import ConfigError

#: Anthropic's cache prices as multiples of the input price; used only where a price entry of an
#: operator's file leaves them out (every entry of config/prices.json states them).
STANDARD_CACHE = {"cache_write_5m": 1.25, "cache_write_1h": 2.0, "cache_read": 0.1}
_RATE_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_PRICE_KEYS = {*_RATE_FIELDS, "geo", "long_context", "source"}
_TOP_LEVEL = {"_source", "_comment", "batch_discount", "server_tools", "inference_geo", "families", "models"}


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens of each kind."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    @classmethod
    def parse(cls, where: str, d: Mapping[str, Any]) -> Rates:
        values: dict[str, float] = {}
        for name in _RATE_FIELDS:
            raw = d.get(name)
            if raw is None and name in STANDARD_CACHE and "input" in values:
                raw = values["input"] * STANDARD_CACHE[name]
            if not isinstance(raw, int | float) or isinstance(raw, bool) or raw < 0:
                raise ConfigError(f"prices: {where}.{name} must be a number >= 0, got {raw!r}")
            values[name] = float(raw)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ModelPrice:
    base: Rates
    #: Every token of a request whose prompt (input + cache reads + cache writes) exceeds
    #: `long_context_over` tokens is priced at `long_context` (Sonnet 4/4.5 over 200k, Haiku 5.5 over 100k).
    long_context: Rates | None = None
    long_context_over: int = 0
    geo: bool = False  # whether `inference_geo` multipliers apply (Claude 4.6 and later)

    @classmethod
    def parse(cls, where: str, d: Mapping[str, Any]) -> ModelPrice:
        if not isinstance(d, Mapping):
            raise ConfigError(f"prices: {where} must be an object or the name of a family")
        unknown = set(d) - _PRICE_KEYS
        if unknown:
            raise ConfigError(f"prices: {where} has unknown keys {sorted(unknown)} (known: {sorted(_PRICE_KEYS)})")
        lc = d.get("long_context")
        if lc is None:
            return cls(Rates.parse(where, d), geo=bool(d.get("geo", False)))
        over = lc.get("over_prompt_tokens") if isinstance(lc, Mapping) else None
        if type(over) is not int or over < 1:
            raise ConfigError(f"prices: {where}.long_context.over_prompt_tokens must be an integer >= 1")
        return cls(Rates.parse(where, d), Rates.parse(f"{where}.long_context", lc), over, bool(d.get("geo", False)))


@dataclass(frozen=True, slots=True)
class Usage:
    """The billable counts of one response's `usage` (cache writes split by TTL)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    cache_read: int = 0
    web_searches: int = 0
    inference_geo: str | None = None

    @classmethod
    def from_api(cls, usage: Mapping[str, Any]) -> Usage:
        cache = usage.get("cache_creation") or {}
        write_1h = _count(cache.get("ephemeral_1h_input_tokens"))
        write_total = _count(usage.get("cache_creation_input_tokens"))
        # Without the TTL split (older responses) every write is a 5-minute write, the default TTL.
        write_5m = _count(cache.get("ephemeral_5m_input_tokens")) if cache else max(0, write_total - write_1h)
        tools = usage.get("server_tool_use") or {}
        geo = usage.get("inference_geo")
        return cls(
            input_tokens=_count(usage.get("input_tokens")),
            output_tokens=_count(usage.get("output_tokens")),
            cache_write_5m=write_5m,
            cache_write_1h=write_1h,
            cache_read=_count(usage.get("cache_read_input_tokens")),
            web_searches=_count(tools.get("web_search_requests")) if isinstance(tools, Mapping) else 0,
            inference_geo=geo if isinstance(geo, str) else None,
        )

    @property
    def prompt_tokens(self) -> int:
        return self.input_tokens + self.cache_read + self.cache_write_5m + self.cache_write_1h


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


@dataclass(frozen=True, slots=True)
class Cost:
    batch_micros: int
    standard_micros: int


@dataclass(frozen=True)
class PriceTable:
    models: dict[str, ModelPrice]
    batch_discount: float = 0.5
    server_tools: Mapping[str, float] | None = None  # USD per use, by `usage.server_tool_use` field
    inference_geo: Mapping[str, float] | None = None  # multiplier by `usage.inference_geo` value

    @classmethod
    def load(cls, override_path: str | None = None) -> PriceTable:
        data = json.loads(resources.files("batchline.config").joinpath("prices.json").read_text())
        if override_path:
            try:
                extra = json.loads(Path(override_path).read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"BATCHLINE_PRICES_FILE={override_path}: {exc}") from None
            if not isinstance(extra, dict):
                raise ConfigError(f"BATCHLINE_PRICES_FILE={override_path}: must be a JSON object")
            data = merge(data, extra)
        return cls.parse(data)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> PriceTable:
        unknown = set(data) - _TOP_LEVEL
        if unknown:
            raise ConfigError(
                f"prices: unknown keys {sorted(unknown)} (a model without a price is counted as "
                "unpriced; there is no default model)"
            )
        families = {name: ModelPrice.parse(f"families.{name}", d) for name, d in (data.get("families") or {}).items()}
        models: dict[str, ModelPrice] = {}
        for model, entry in (data.get("models") or {}).items():
            if isinstance(entry, str):
                if entry not in families:
                    raise ConfigError(f"prices: models.{model} names family {entry!r}, which is not in families")
                models[model] = families[entry]
            else:
                models[model] = ModelPrice.parse(f"models.{model}", entry)
        discount = data.get("batch_discount", 0.5)
        if not isinstance(discount, int | float) or not 0 < discount <= 1:
            raise ConfigError(f"prices: batch_discount must be in (0, 1], got {discount!r}")
        return cls(models, float(discount), dict(data.get("server_tools") or {}), dict(data.get("inference_geo") or {}))

    def price(self, model: str) -> ModelPrice | None:
        return self.models.get(model)

    def cost(self, model: str, usage: Usage) -> Cost | None:
        """(batch, standard) cost of one succeeded request, or None when the model has no price."""
        price = self.models.get(model)
        if price is None:
            return None
        rates = price.base
        if price.long_context is not None and usage.prompt_tokens > price.long_context_over:
            rates = price.long_context
        tokens = (
            usage.input_tokens * rates.input
            + usage.output_tokens * rates.output
            + usage.cache_write_5m * rates.cache_write_5m
            + usage.cache_write_1h * rates.cache_write_1h
            + usage.cache_read * rates.cache_read
        )
        if price.geo and usage.inference_geo:
            tokens *= (self.inference_geo or {}).get(usage.inference_geo, 1.0)
        # Server tools are billed per use at the same price in a batch: the discount is on tokens.
        tools = usage.web_searches * (self.server_tools or {}).get("web_search_requests", 0.0) * 1e6
        return Cost(round(tokens * self.batch_discount + tools), round(tokens + tools))

    def cost_micros(self, model: str, usage: Mapping[str, Any]) -> Cost | None:
        """The cost of a response's raw `usage` object."""
        return self.cost(model, Usage.from_api(usage))


#: For estimates before anything ran: bytes of request JSON per input token. Rough (JSON punctuation
#: and newer tokenizers move it both ways); delivered results are always costed from their `usage`.
BYTES_PER_TOKEN = 4


@dataclass
class InputEstimate:
    """The input cost of requests not yet run: tokens guessed from their size, at their model's price."""

    tokens: int = 0
    batch_micros: int = 0
    standard_micros: int = 0
    unpriced: dict[str, int] | None = None  # model -> requests whose model has no price

    def add(self, table: PriceTable, model: str, request_bytes: int) -> None:
        tokens = max(1, request_bytes // BYTES_PER_TOKEN)
        self.tokens += tokens
        cost = table.cost(model, Usage(input_tokens=tokens))
        if cost is None:
            self.unpriced = self.unpriced or {}
            self.unpriced[model] = self.unpriced.get(model, 0) + 1
        else:
            self.batch_micros += cost.batch_micros
            self.standard_micros += cost.standard_micros


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """An operator's file over the shipped table: maps (families, models, tools, geo) merge by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out
