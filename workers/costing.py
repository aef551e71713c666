"""The cost of a delivered result as the deliver script records it; unpriced models logged once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from batchline import log
from batchline.costs import PriceTable

logger = log.get("batchline.costs")
UNPRICED = "unpriced"
_warned: set[str] = set()


def cost_field(
    prices: PriceTable, model: str, usage: Mapping[str, Any], first_report: Callable[[str], bool] = lambda m: True
) -> str:
    """'batch_micros:standard_micros', or 'unpriced' for a model the price table does not list
    (counted apart, never costed as another model). Logged once per model: once per process, and only
    if `first_report(model)` says no other process has logged it (a Redis SET NX, per day)."""
    cost = prices.cost_micros(model, usage)
    if cost is not None:
        return f"{cost.batch_micros}:{cost.standard_micros}"
    if model not in _warned:
        _warned.add(model)
        if not first_report(model):
            return UNPRICED
        logger.warning(
            "cost.unpriced_model",
            model=model,
            hint="add it to a BATCHLINE_PRICES_FILE; its requests are counted as unpriced",
        )
    return UNPRICED


def cost_usd(field: str) -> float | None:
    """What was paid in USD, from a cost field: the batch cost, or the real-time one ('rt:micros');
    '' = not billed: 0; unpriced: None."""
    if field == UNPRICED:
        return None
    if field.startswith("rt:"):
        return int(field[3:]) / 1e6
    return int(field.split(":")[0]) / 1e6 if field else 0.0
