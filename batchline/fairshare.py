"""Fair share: how many requests of each tenant go into the next batch (pure; no I/O).

Weighted max-min fairness ("water filling"): each tenant with pending work is offered room in
proportion to its weight; what a tenant cannot use (it has fewer pending) is offered again to the
others, until the batch is full or nobody has more. So a tenant with 50 queued behind another's
100,000 gets all 50 into the next batch (when the batch holds more than twice that), and a big
backlog never starves a small one. Rounding goes to the largest remainders, ties to the tenant with
the larger `carry` (what it was rounded down by before), so rounding evens out across batches.

The model of `batchline/lua/claim.lua`, which fills each batch by the same rule in rounds of small
quanta inside Redis (it cannot call Python): tests/integration/test_fair_share.py checks the
claim's split against `shares` within one quantum.
"""

from __future__ import annotations

from collections.abc import Mapping


def shares(
    pending: Mapping[str, int],
    weights: Mapping[str, int],
    capacity: int,
    carry: Mapping[str, float] | None = None,
) -> dict[str, int]:
    """Requests to take from each tenant (0 for none), summing to min(capacity, total pending)."""
    if capacity < 0:
        raise ValueError(f"capacity={capacity}: must be >= 0")
    hungry = {t: n for t, n in pending.items() if n > 0}
    out = dict.fromkeys(pending, 0)
    room = min(capacity, sum(hungry.values()))
    exact: dict[str, float] = dict.fromkeys(hungry, 0.0)
    left = float(room)
    while hungry and left > 1e-9:
        total_w = sum(max(1, weights.get(t, 1)) for t in hungry)
        offer = {t: left * max(1, weights.get(t, 1)) / total_w for t in hungry}
        capped = {t for t in hungry if exact[t] + offer[t] >= pending[t]}
        if not capped:
            for t in hungry:
                exact[t] += offer[t]
            break
        for t in capped:  # these take all they have; the rest of their offer goes round again
            left -= pending[t] - exact[t]
            exact[t] = float(pending[t])
            del hungry[t]
    for t, x in exact.items():
        out[t] = int(x)
    short = room - sum(out.values())
    carry = carry or {}
    order = sorted(exact, key=lambda t: (int(exact[t]) - exact[t], -carry.get(t, 0.0), t))
    for t in order:
        if short <= 0:
            break
        if out[t] < pending[t]:
            out[t] += 1
            short -= 1
    return out
