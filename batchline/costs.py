"""What a request cost, from its actual `usage`, at batch prices and at standard prices (pure).

Amounts are integer micro-dollars, so totals kept in Redis add up exactly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class PriceTable:
    models: dict[str, dict[str, float]]
    default_model: dict[str, float]
    batch_discount: float = 0.5
    cache_read: float = 0.1
    cache_write_5m: float = 1.25
    cache_write_1h: float = 2.0

    @classmethod
    def load(cls, override_path: str | None = None) -> PriceTable:
        data = json.loads(resources.files("batchline.config").joinpath("prices.json").read_text())
        if override_path:
            extra = json.loads(Path(override_path).read_text())
            data["models"] = {**data["models"], **extra.pop("models", {})}
            data.update(extra)
        data.pop("_comment", None)
        return cls(**data)

    def cost_micros(self, model: str, usage: dict[str, Any]) -> tuple[int, int]:
        """(batch cost, standard cost) of one succeeded request, in micro-dollars."""
        price = self.models.get(model)
        if price is None:  # dated ids such as claude-haiku-4-5-20251001 price as their family
            price = next((p for m, p in self.models.items() if model.startswith(m)), self.default_model)
        cache = usage.get("cache_creation") or {}
        write_1h = int(cache.get("ephemeral_1h_input_tokens") or 0)
        write_total = int(usage.get("cache_creation_input_tokens") or 0)
        write_5m = int(cache.get("ephemeral_5m_input_tokens") or max(0, write_total - write_1h))
        input_equiv = (
            int(usage.get("input_tokens") or 0)
            + self.cache_read * int(usage.get("cache_read_input_tokens") or 0)
            + self.cache_write_5m * write_5m
            + self.cache_write_1h * write_1h
        )
        standard = input_equiv * price["input"] + int(usage.get("output_tokens") or 0) * price["output"]
        # price per million tokens x tokens = micro-dollars
        return round(standard * self.batch_discount), round(standard)
