"""adapters.runtime.jsonio: bounded nesting (a ValueError, never a RecursionError), lone surrogates."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.runtime import jsonio
from adapters.runtime.jsonio import MAX_DEPTH, STORED_DEPTH


def nested(depth: int, inner: str = "") -> str:
    """``depth`` arrays inside each other, ``inner`` in the innermost."""
    return "[" * depth + inner + "]" * depth


def objects(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


LOADERS: dict[str, Callable[[bytes | str], Any]] = {
    "loads": jsonio.loads,
    "loads_text": jsonio.loads_text,
}

# name -> text too deep for both loaders; the orjson-refused ones go the standard library's way.
TOO_DEEP = {
    "arrays": nested(STORED_DEPTH + 1),
    "objects": objects(STORED_DEPTH + 1),
    "very-deep": nested(100_000),
    "nan-first": "[NaN, " + nested(5000) + "]",
    "surrogate-first": '["\\ud800", ' + objects(5000) + "]",
    "nan-last": nested(5000, "NaN"),
    "unclosed": "[" * 100_000,
}


@pytest.fixture
def high_recursion_limit() -> Iterator[None]:
    """A process that raised the limit must not let the standard library nest deeper."""
    before = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    yield
    sys.setrecursionlimit(before)


@pytest.mark.parametrize("as_bytes", [True, False], ids=["bytes", "str"])
@pytest.mark.parametrize("text", list(TOO_DEEP))
@pytest.mark.parametrize("loader", list(LOADERS))
def test_too_deep_is_a_value_error(loader: str, text: str, as_bytes: bool) -> None:
    data = TOO_DEEP[text].encode() if as_bytes else TOO_DEEP[text]
    with pytest.raises(ValueError, match="nested deeper than|Expecting|line 1"):
        LOADERS[loader](data)


@pytest.mark.usefixtures("high_recursion_limit")
@pytest.mark.parametrize("loader", list(LOADERS))
def test_the_bound_holds_whatever_the_recursion_limit(loader: str) -> None:
    with pytest.raises(ValueError, match="nested deeper than"):
        LOADERS[loader]("[NaN, " + nested(STORED_DEPTH + 100) + "]")


@pytest.mark.parametrize(
    "text",
    [nested(MAX_DEPTH + 1), objects(MAX_DEPTH + 1), nested(MAX_DEPTH + 1, '"\\ud800"')],
    ids=["arrays", "objects", "surrogate"],
)
def test_what_clients_send_nests_at_most_max_depth(text: str) -> None:
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_DEPTH} levels"):
        jsonio.loads_text(text)
    # Stored rows written before the bound stay readable.
    assert jsonio.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        nested(MAX_DEPTH),
        objects(MAX_DEPTH),
        nested(MAX_DEPTH, '"\\ud800"'),  # the standard library's way
        "[" + ",".join([nested(3)] * 5000) + "]",  # many brackets, shallow: walked, accepted
    ],
    ids=["arrays", "objects", "surrogate", "wide"],
)
def test_what_is_accepted_can_be_stored_and_sent_again(text: str) -> None:
    value = jsonio.loads_text(text)
    # Wrapped as an activity in a frame, it still serializes (orjson stops at 254 levels, the
    # standard library's fallback at the recursion limit).
    frame = {"activities": [{"type": "event", "value": value}], "watermark": "1"}
    assert jsonio.loads(jsonio.dumps(frame))["activities"][0]["value"] == value


def test_lone_surrogates_become_replacement_characters_in_client_text() -> None:
    data = b'{"text": "half an emoji \\ud83d", "from": {"name": "\\udc00x"}}'
    assert jsonio.loads_text(data) == {
        "text": "half an emoji \ufffd",
        "from": {"name": "\ufffdx"},
    }
    # Stored rows are read as they were written.
    assert jsonio.loads(data)["text"] == "half an emoji \ud83d"


@pytest.mark.parametrize("loader", list(LOADERS))
@pytest.mark.parametrize(
    "data", [b"", b"{", b"\xff", b"[1,]", "\ud800".encode("utf-8", "surrogatepass")]
)
def test_invalid_json_is_a_value_error(loader: str, data: bytes) -> None:
    with pytest.raises(ValueError):
        LOADERS[loader](data)
