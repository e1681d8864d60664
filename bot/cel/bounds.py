"""How big the facts a rule sees can be: what ``bot.cel.cost`` assumes, and what enforces it.

A visitor writes most of the facts (``context``, the tags and account it carries, the latest
message), so their size is not ours to choose; bounding them is what makes a rule's cost known
before it runs. ``bounded`` cuts a variable's value to these bounds, keeping the first items
of each list and map and the start of each string:

* a string (or bytes) holds at most ``STRING`` characters; a longer map key drops its entry;
* a list or map holds at most ``ITEMS`` items;
* a variable holds at most ``VALUES[0]`` values (every string, number, list, map...) and
  ``CHARS[0]`` characters of strings and keys, and each level down at most ``VALUES[d]`` and
  ``CHARS[d]``: ``context`` 4,096 values, ``context.cart`` 512, ``context.cart[0]`` 128,
  and so on, so nothing is nested more than six levels below the variable.

Each level holding a fraction of the one above keeps the cost of a rule that walks a list and
reads its items' fields low (``context.items.exists(i, i.price > 100)`` reads small values)
while a single list can still carry most of the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STRING = 4096
ITEMS = 100
VALUES = (4096, 512, 128, 32, 8, 2, 1)
CHARS = (65536, 16384, 4096, 4096, 4096, 4096, 4096)


def bounded(value: Any) -> Any:
    """The value of one rule variable, cut to the bounds (the same object if within them)."""
    if _measure(value, 0) >= 0:
        return value
    return _bound(value, 0)[0]


_ONE = 1 << 32  # one value, in ``_measure``'s count: values << 32 | characters
_CHARS = _ONE - 1


def _measure(value: Any, depth: int) -> int:
    """``values << 32 | characters`` of a plain value within its bounds, else -1.

    The common case, and fast: facts are usually a few small values, and this runs for
    every message. Anything else (too big, other types) goes to ``_bound``.
    """
    kind = type(value)
    if kind is str:
        return _ONE | len(value) if len(value) <= STRING else -1
    if kind in _SCALARS:
        return _ONE
    if kind is dict:
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        return -1
    if len(value) > ITEMS or (value and depth + 1 >= len(VALUES)):
        return -1
    total = _ONE
    if kind is dict:
        for key in value:
            if type(key) is not str or len(key) > STRING:
                return -1
            total += len(key)
    for item in items:
        # Strings and numbers inline: a call per value would double the time.
        item_kind = type(item)
        if item_kind is str:
            if len(item) > STRING:
                return -1
            total += _ONE + len(item)
        elif item_kind in _SCALARS:
            total += _ONE
        else:
            size = _measure(item, depth + 1)
            if size < 0:
                return -1
            total += size
    if total >> 32 > VALUES[depth] or total & _CHARS > CHARS[depth]:
        return -1
    return total


_SCALARS = frozenset({int, float, bool, type(None)})


def _bound(value: Any, depth: int) -> tuple[Any, int, int]:
    """The value within the bounds of its depth, with the values and characters it holds."""
    # Exact types first: this runs for every value of every message.
    kind = type(value)
    if kind is str:
        if len(value) > STRING:
            value = value[:STRING]
        return value, 1, len(value)
    if kind in _SCALARS:
        return value, 1, 0
    if kind is dict:
        return _bound_container(value, depth)
    if kind is list:
        return _bound_container(value, depth)
    if isinstance(value, str | bytes):  # a slice is a plain str or bytes
        value = value[:STRING]
        return value, 1, len(value)
    if isinstance(value, Mapping):
        return _bound_container(value, depth)
    if isinstance(value, list | tuple):
        return _bound_container(value, depth)
    return value, 1, 0  # anything else reaches CEL as text, cut by ``bot.cel.facts.celsafe``


def _bound_container(
    value: Mapping[Any, Any] | list[Any] | tuple[Any, ...], depth: int
) -> tuple[Any, int, int]:
    """A mapping's or a sequence's first items that fit, each cut to the bounds below; a
    mapping's keys count as characters, and one longer than a string may be is left out."""
    mapping = isinstance(value, Mapping)
    values_left = VALUES[depth] - 1
    chars_left = CHARS[depth]
    kept: list[tuple[Any, Any]] = []
    changed = False
    if depth + 1 < len(VALUES):
        below = depth + 1
        pairs = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in pairs:
            if len(kept) >= ITEMS:
                break
            size = len(key) if mapping and isinstance(key, str | bytes) else 0
            if size > STRING:
                changed = True
                continue
            new, values, chars = _bound(item, below)
            chars += size
            if values > values_left or chars > chars_left:
                break
            values_left -= values
            chars_left -= chars
            if new is not item:
                changed = True
            kept.append((key, new))
    if changed or len(kept) < len(value):
        if mapping:
            value = dict(kept)
        else:
            items = [item for _, item in kept]
            value = items if type(value) is list else tuple(items)
    return value, VALUES[depth] - values_left, CHARS[depth] - chars_left
