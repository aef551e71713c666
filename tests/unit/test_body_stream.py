"""The streamed create body: exactly the inline body's bytes, from stored pieces."""

from __future__ import annotations

import json

import pytest

from batchline.errors import ParamsUnavailable
from batchline.objects import REF, MemoryStore
from batchline.workers import body


def _flat(n: int, large: set[int], store: MemoryStore) -> tuple[list[bytes], list[bytes]]:
    inline: list[bytes] = []
    stored: list[bytes] = []
    for i in range(n):
        params = json.dumps(
            {
                "model": "m",
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "x" * (3_000_000 if i in large else 10) + f" {i} \u2028"}],
            }
        ).encode()
        rid = f"t\x1fc-{i}".encode()
        inline += (rid, params)
        if i in large:
            key = f"p/params/{i}"
            store.put(key, params)
            stored += (rid, REF + key.encode())
        else:
            stored += (rid, params)
    return inline, stored


@pytest.mark.parametrize("large", [set(), {0}, {4}, {0, 2, 4}, {1, 3}])
def test_streamed_body_equals_inline_body(large):
    store = MemoryStore()
    inline, stored = _flat(5, large, store)
    expected = body.build_body(inline)
    pieces = list(body.stream_body(stored, store))
    assert b"".join(pieces) == expected
    assert max(len(p) for p in pieces) <= max(body.BUFFER, 1 << 20) + 200  # never the whole body at once
    assert body.has_refs(stored) is bool(large)
    assert [rid for rid, _ in body.refs(stored)] == [f"t\x1fc-{i}" for i in sorted(large)]


def test_many_small_inline_items_are_coalesced():
    store = MemoryStore()
    inline, stored = _flat(2000, {7}, store)
    pieces = list(body.stream_body(stored, store))
    assert b"".join(pieces) == body.build_body(inline)
    assert len(pieces) < 20  # buffered: not one write per item


def test_missing_object_raises_params_unavailable():
    store = MemoryStore()
    _, stored = _flat(3, {1}, store)
    store.objects.clear()
    with pytest.raises(ParamsUnavailable, match="p/params/1"):
        b"".join(body.stream_body(stored, store))
