"""The gateway's create body, parsed one request at a time (gateway/validate.py `create_requests`, as
for bodies over SPLIT_ABOVE): the same pairs and the same errors as parsing the whole body, whatever
the JSON's spacing and escapes."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchline.errors import InvalidRequest
from batchline.gateway.validate import batch_requests, create_requests, item_spans


def params(text: str) -> dict:
    return {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": text}]}


def whole(body: bytes, limit: int = 100) -> list | str:
    try:
        return batch_requests(orjson.loads(body), limit)
    except (InvalidRequest, orjson.JSONDecodeError) as exc:
        return str(exc)


def split(body: bytes, limit: int = 100) -> list | str:
    try:
        _n, pairs = create_requests(body, limit, split_above=0)
        return list(pairs)
    except InvalidRequest as exc:
        return str(exc)


TRICKY = ["plain", 'quote " inside', "backslash \\", "ends with backslash \\\\", "{[not]} structure", '\\"', "é ☃"]


@pytest.mark.parametrize("indent", [None, 2])
def test_each_request_is_found_through_escapes_and_spacing(indent):
    body = json.dumps(
        {"requests": [{"custom_id": f"c{i}", "params": params(t)} for i, t in enumerate(TRICKY)]}, indent=indent
    ).encode()
    assert item_spans(body) is not None
    assert split(body) == whole(body) == [(f"c{i}", params(t)) for i, t in enumerate(TRICKY)]


@pytest.mark.parametrize(
    "body",
    [
        b'{"requests": []}',
        b'{"requests": [{"custom_id": "a", "params": {}}]}',
        b'{"requests": [{"custom_id": "a", "params": %s},]}' % orjson.dumps(params("x")),
        b'{"requests": [{"custom_id": "a", "params": %s}], "extra": 1}' % orjson.dumps(params("x")),
        b'{"requests": [5]}',
        b'{"requests": [{"custom_id": "a", "params": %s} {"custom_id": "b"}]}' % orjson.dumps(params("x")),
        b'{"requests": [{"custom_id": "a", "params": %s}, {"custom_id": "a", "params": %s}]}'
        % (orjson.dumps(params("x")), orjson.dumps(params("y"))),
        b'{"requests": [{"custom_id": "a", "params": {"model": NaN}}]}',
        b'{"requests": [{"custom_id": "a", "params": %s}]' % orjson.dumps(params("x")),
        b'{"requests": [{"custom_id": "a", "params": %s}]}}' % orjson.dumps(params("x")),
        b'{"requests": [{"custom_id": "a", "params": "unterminated}]}',
        b'["requests"]',
    ],
)
def test_bad_bodies_get_the_whole_parse_error(body):
    got, expected = split(body), whole(body)
    assert isinstance(got, str) and isinstance(expected, str)
    if isinstance(expected, str) and "invalid JSON" not in got:
        assert got == expected
    else:  # orjson's own message: the same whole-body parse made it
        assert got.startswith("body: invalid JSON")


def test_too_many_is_refused_before_any_request_is_parsed():
    body = b'{"requests": [' + b",".join([b'{"custom_id": "a", "params": NOT JSON}'] * 3) + b"]}"
    with pytest.raises(InvalidRequest, match="at most 2 requests"):
        create_requests(body, 2, split_above=0)


texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=200, deadline=None)
@given(st.lists(texts, min_size=1, max_size=5), st.sampled_from([None, 1, 4]))
def test_any_text_splits_as_the_whole_parse(contents, indent):
    items = [{"custom_id": f"c{i}", "params": params(t)} for i, t in enumerate(contents)]
    body = json.dumps({"requests": items}, indent=indent, ensure_ascii=bool(indent)).encode()
    assert split(body) == whole(body)
