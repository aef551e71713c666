"""A batch's create body from its stored pieces: inline params as they are, large params streamed
from the object store (batchline/objects.py), so a 250 MB body is never held in memory whole.

The bytes are exactly those `build_body` makes from the same params inline; the length is known in
advance from the stored sizes, so the body goes out with a Content-Length (no chunked encoding).
"""

from __future__ import annotations

from collections.abc import Iterator

from batchline.objects import ObjectStore, is_ref, ref_key

BUFFER = 1 << 20  # inline items are coalesced into writes of about this many bytes


def build_body(flat: list[bytes]) -> bytes:
    """The create body from already-serialized params: no parse, no re-encode."""
    items = [b'{"custom_id":"%s","params":%s}' % (flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
    return b'{"requests":[' + b",".join(items) + b"]}"


def has_refs(flat: list[bytes]) -> bool:
    return any(is_ref(flat[i]) for i in range(1, len(flat), 2))


def refs(flat: list[bytes]) -> list[tuple[str, str]]:
    """(rid, object key) of each request of the claim kept by reference."""
    return [(flat[i].decode(), ref_key(flat[i + 1])) for i in range(0, len(flat), 2) if is_ref(flat[i + 1])]


def stream_body(flat: list[bytes], store: ObjectStore) -> Iterator[bytes]:
    """`build_body`'s bytes, in pieces: inline items buffered, each object read from the store in
    chunks. A store fault raises out of the iteration (the body is then incomplete: never a batch)."""
    buf = bytearray(b'{"requests":[')
    for i in range(0, len(flat), 2):
        if i:
            buf += b","
        params = flat[i + 1]
        if is_ref(params):
            buf += b'{"custom_id":"%s","params":' % flat[i]
            yield bytes(buf)
            buf.clear()
            yield from store.read(ref_key(params))
            buf += b"}"
        else:
            buf += b'{"custom_id":"%s","params":%s}' % (flat[i], params)
            if len(buf) >= BUFFER:
                yield bytes(buf)
                buf.clear()
    buf += b"]}"
    yield bytes(buf)
