"""The fair-share decision as a table of cases (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchline.fairshare import shares


@pytest.mark.parametrize(
    ("pending", "weights", "capacity", "expected"),
    [
        ({"a": 100_000, "b": 50}, {}, 10_000, {"a": 9_950, "b": 50}),  # the small tenant is not starved
        ({"a": 100_000, "b": 100_000}, {}, 10_000, {"a": 5_000, "b": 5_000}),
        ({"a": 100_000, "b": 100_000}, {"a": 3, "b": 1}, 10_000, {"a": 7_500, "b": 2_500}),
        ({"a": 10, "b": 20}, {}, 10_000, {"a": 10, "b": 20}),  # room for everything
        ({"a": 0, "b": 5}, {}, 3, {"a": 0, "b": 3}),
        ({"a": 100, "b": 100, "c": 100}, {}, 10, {"a": 4, "b": 3, "c": 3}),  # rounding: ties by name
        ({}, {}, 10, {}),
        ({"a": 5}, {}, 0, {"a": 0}),
    ],
)
def test_shares(pending, weights, capacity, expected):
    assert shares(pending, weights, capacity) == expected


def test_carry_breaks_rounding_ties_so_they_even_out():
    assert shares({"a": 100, "b": 100, "c": 100}, {}, 10, carry={"c": 0.5}) == {"a": 3, "b": 3, "c": 4}


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 10_000), max_size=6),
    st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 10), max_size=6),
    st.integers(0, 20_000),
)
def test_shares_fill_the_batch_never_exceed_pending_and_respect_weights(pending, weights, capacity):
    got = shares(pending, weights, capacity)
    assert sum(got.values()) == min(capacity, sum(pending.values()))
    assert all(0 <= got[t] <= pending[t] for t in pending)
    for t in pending:  # a tenant left wanting got at least its weighted share (within rounding)
        if got[t] < pending[t]:
            for u in pending:
                wt, wu = weights.get(t, 1), weights.get(u, 1)
                assert got[t] / wt >= min(got[u], pending[u]) / wu - 1.0 - 1 / wt
