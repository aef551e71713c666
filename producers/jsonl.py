"""One line of a JSONL submit file, parsed without ever raising anything but `InvalidRequest`.

The line is decoded as strict UTF-8 and parsed by the standard library's JSON parser with hooks, so
that what JSON does not allow, or what would change silently on the way to Redis, is refused by name:
NaN and Infinity (Python's parser accepts them), numbers too large for a double, integers beyond 64 bits
(orjson, which stores the request, cannot write them), nesting deeper than the parser's recursion limit.
"""

from __future__ import annotations

import json
import math
from typing import Any

from batchline.errors import InvalidRequest

#: 64-bit integers have at most 19 digits (20 with a sign); anything longer cannot be stored.
MAX_INT_CHARS = 20


def _constant(name: str) -> Any:
    raise InvalidRequest("line", f"{name} is not valid JSON (use null, a number or a string)")


def _int(text: str) -> int:
    if len(text) > MAX_INT_CHARS:
        raise InvalidRequest("line", f"an integer of {len(text)} digits is out of range (64-bit integers only)")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise InvalidRequest("line", f"the number {text[:40]} is out of range (larger than a double)")
    return value


_DECODER = json.JSONDecoder(parse_constant=_constant, parse_int=_int, parse_float=_float)


def parse_line(raw: bytes | str) -> dict[str, Any]:
    """The object on one line, or `InvalidRequest('line', rule)`."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest("line", f"invalid UTF-8 at byte {exc.start} ({exc.reason})") from None
    try:
        item = _DECODER.decode(raw)
    except json.JSONDecodeError as exc:
        raise InvalidRequest("line", f"invalid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise InvalidRequest("line", "nested too deeply (arrays and objects inside each other)") from None
    if not isinstance(item, dict):
        raise InvalidRequest("line", "must be a JSON object")
    return item
