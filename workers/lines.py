"""Split a byte stream into JSONL lines: on b"\\n" only, a trailing b"\\r" stripped.

Never `str.splitlines()`: JSON may carry U+2028/U+2029 raw, and the SDK's own decoder breaks on
a CRLF that straddles its read boundary (docs/batches-api.md, Known traps).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator


def iter_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    tail = b""
    for chunk in chunks:
        if not chunk:
            continue
        parts = (tail + chunk).split(b"\n") if tail else chunk.split(b"\n")
        tail = parts.pop()
        for part in parts:
            if part.endswith(b"\r"):
                part = part[:-1]
            if part:
                yield part
    if tail.endswith(b"\r"):
        tail = tail[:-1]
    if tail:
        yield tail
