"""What evaluating a rule may cost, estimated from its tree before the CEL extension runs it.

In the style of cel-go's cost estimator, and an upper bound by construction: every value has a
``Size`` (longest string, most items, the weight of copying it all, the size of any one item),
facts have the sizes ``bot.cel.bounds`` cuts them to, and each step of evaluation is charged
its worst case. A step is about what the extension takes for one node (60 ns on a 2-core
machine); copying a value is ``VALUE`` steps. Measured with facts as large as the bounds
allow, rules took at most 70 ns per estimated step: ``COST_LIMIT`` is at most ~20 ms, and
real rules estimate far lower (``context.tags.exists(t, t.startsWith("vip"))``: 5,000).

What costs (measured on the ``cel`` extension, which is where these rules come from):

* every node is a step; a member access or index copies its result, and so does binding a
  comprehension variable to each item (the copies of one comprehension add up to at most the
  range: its items are parts of it);
* a comprehension costs its range size times its body (nested ones multiply);
* ``map`` and ``filter`` copy the list built so far at every step: n items cost n*n/2 copies
  of an item, and their result is n times the body's result;
* the result goes back to Python as objects (0.5 us a map entry);
* ``+`` copies both sides (string, bytes and list concatenation add sizes); comparisons and
  ``in`` walk their operands;
* ``contains``/``startsWith``/``endsWith`` scan the text; ``matches`` compiles its pattern at
  every evaluation (a short pattern such as ``\\w{100}`` compiles for 30 ms) and then scans the
  text once per state of the pattern; a pattern that is not a literal could be anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.cel import bounds
from bot.cel.check import snippet
from bot.cel.parser import Node
from bot.cel.regex_cost import DYNAMIC_PATTERN, regex_cost

COST_LIMIT = 300_000
VALUE = 4  # steps to copy one value (a map entry takes ~150 ns, a list item ~40 ns)
CHARS_PER_COPY = 256  # characters copied, compared or hashed per step
CHARS_PER_SCAN = 32  # characters searched per step (a substring or pattern search)
_CAP = 1e30  # costs stay finite (and 0 * cost stays 0)


class CelTooCostlyError(ValueError):
    """The rule may cost more than ``COST_LIMIT`` steps to evaluate."""


@dataclass(frozen=True, slots=True)
class Size:
    """An upper bound on a value: its characters, items, copying weight and any one item.

    ``fields`` are the sizes of a map's known fields (the facts ``facts_for`` builds).
    """

    chars: float
    items: float
    weight: float
    item: Size | None
    fields: Mapping[str, Size] | None = None


SCALAR = Size(0, 0, VALUE, None)


def _text(chars: float) -> Size:
    return Size(chars, 0, VALUE + chars / CHARS_PER_COPY, None)


def _join(a: Size | None, b: Size | None) -> Size | None:
    if a is None or b is None:
        return a or b
    return Size(
        max(a.chars, b.chars), max(a.items, b.items), max(a.weight, b.weight), _join(a.item, b.item)
    )


def _sum(sizes: list[Size]) -> Size:
    item: Size | None = None
    for size in sizes:
        item = _join(item, size.item)
    return Size(
        min(sum(s.chars for s in sizes), _CAP),
        min(sum(s.items for s in sizes), _CAP),
        min(sum(s.weight for s in sizes), _CAP),
        item,
    )


def _facts() -> tuple[Size, ...]:
    """The size of a fact at each depth below a variable (``bot.cel.bounds``)."""
    sizes: list[Size] = []
    below: Size | None = None
    for depth in reversed(range(len(bounds.VALUES))):
        values, chars = bounds.VALUES[depth], bounds.CHARS[depth]
        longest = min(bounds.STRING, chars)
        items = min(bounds.ITEMS, values - 1)
        item = _join(below, _text(longest)) if items else None  # an item, a map key
        below = Size(longest, items, VALUE * values + chars / CHARS_PER_COPY, item)
        sizes.append(below)
    return tuple(reversed(sizes))


FACTS = _facts()


def _record(fields: dict[str, Size], weight: float | None = None) -> Size:
    """A map with known fields (any one of them, or a key, is an item)."""
    item: Size | None = _text(bounds.STRING)
    for size in fields.values():
        item = _join(item, size)
    if weight is None:
        weight = VALUE + sum(size.weight + VALUE for size in fields.values())
    chars = max(size.chars for size in fields.values())
    return Size(chars, len(fields), weight, item, fields)


def _strings() -> Size:
    """A list of strings, each cut on its own (``visitor.tags``)."""
    items = bounds.ITEMS
    string = _text(bounds.STRING)
    return Size(0, items, VALUE + items * string.weight, string)


# What ``bot.rules.routing.facts_for`` builds (``context`` is whatever the visitor sent, cut as a
# variable; the visitor's own fields too, its tags and account come from the cut context).
_TEXT = _text(bounds.STRING)
_TAGS = _strings()
VARIABLES = {
    "visitor": _record(
        {
            **dict.fromkeys(
                ("id", "name", "email", "company", "locale", "timezone", "user_agent"), _TEXT
            ),
            "page": FACTS[1],
            "extra": FACTS[1],
            "tags": _TAGS,
            "account": FACTS[1],
        },
        weight=FACTS[0].weight + _TAGS.weight + FACTS[1].weight,
    ),
    "conversation": _record(
        {
            **dict.fromkeys(("turns", "messages", "duration", "fallbacks"), SCALAR),
            "text": _TEXT,
            "intents": _TAGS,
        }
    ),
    "context": FACTS[0],
    "now": SCALAR,
}

_TO_SCALAR = frozenset(
    "int uint double bool duration timestamp type getFullYear getMonth getDate getDayOfMonth "
    "getDayOfWeek getDayOfYear getHours getMinutes getSeconds getMilliseconds".split()
)

Estimate = tuple[float, Size, str]  # cost, result size, what makes it cost (for messages)


class _Estimator:
    def __init__(self, text: str) -> None:
        self.text = text
        self.culprit: tuple[Node, float, str] | None = None

    def cost(self, node: Node, env: dict[str, Size]) -> tuple[float, Size]:
        cost, size, why = getattr(self, "_" + node.kind)(node, env)
        cost = min(cost, _CAP)
        # The first node over the limit (bottom-up) is the smallest part to blame.
        if cost > COST_LIMIT and self.culprit is None:
            self.culprit = (node, cost, why)
        return cost, size

    def costs(self, nodes: tuple[Node, ...], env: dict[str, Size]) -> tuple[float, list[Size]]:
        total, sizes = 0.0, []
        for node in nodes:
            cost, size = self.cost(node, env)
            total += cost
            sizes.append(size)
        return total, sizes

    def _literal(self, node: Node, env: dict[str, Size]) -> Estimate:
        value = node.value
        return 1, _text(len(value)) if isinstance(value, str | bytes) else SCALAR, ""

    def _ident(self, node: Node, env: dict[str, Size]) -> Estimate:
        return 1, env.get(node.value) or VARIABLES.get(node.value, FACTS[0]), ""

    def _select(self, node: Node, env: dict[str, Size]) -> Estimate:
        cost, of = self.cost(node.args[0], env)
        if of.fields is not None:  # a field it does not have is an error, no value
            result = of.fields.get(node.value, SCALAR)
        else:
            result = of.item or SCALAR
        return cost + 1 + result.weight, result, "copies the field's value"

    def _has(self, node: Node, env: dict[str, Size]) -> Estimate:
        cost, _ = self.cost(node.args[0].args[0], env)
        return cost + 2, SCALAR, ""

    def _index(self, node: Node, env: dict[str, Size]) -> Estimate:
        cost, (of, _) = self.costs(node.args, env)
        result = of.item or SCALAR
        return cost + 1 + result.weight, result, "copies the item"

    def _list(self, node: Node, env: dict[str, Size]) -> Estimate:
        cost, sizes = self.costs(node.args, env)
        item: Size | None = None
        for size in sizes:
            item = _join(item, size)
        weight = VALUE + sum(s.weight for s in sizes)
        return cost + weight, Size(0, len(sizes), weight, item), "copies its items"

    def _map(self, node: Node, env: dict[str, Size]) -> Estimate:
        cost, list_size, why = self._list(node, env)
        return cost, Size(0, len(node.args) // 2, list_size.weight, list_size.item), why

    _struct = _list

    def _not(self, node: Node, env: dict[str, Size]) -> Estimate:
        return self.cost(node.args[0], env)[0] + 1, SCALAR, ""

    _neg = _not

    def _and(self, node: Node, env: dict[str, Size]) -> Estimate:
        terms = len(node.args)
        return self.costs(node.args, env)[0] + terms, SCALAR, f"its {terms} terms add up"

    _or = _and

    def _cond(self, node: Node, env: dict[str, Size]) -> Estimate:
        cost, (_, then, otherwise) = self.costs(node.args, env)
        return cost + 1, _join(then, otherwise) or SCALAR, ""

    def _op(self, node: Node, env: dict[str, Size]) -> Estimate:
        cost, (a, b) = self.costs(node.args, env)
        op = node.value
        if op == "+":  # numbers, or strings, bytes and lists joined into a new value
            joined = _sum([a, b])
            return cost + 1 + joined.weight, joined, "copies both sides into a new value"
        if op == "in":
            # A list compares with each item (each comparison stops at the smaller value);
            # a map hashes the key, which CEL allows to be a string or a number only.
            walk = b.items + min(b.items * a.weight, b.weight) + a.chars / CHARS_PER_COPY
            return cost + 1 + walk, SCALAR, "compares with every item"
        if op in ("-", "*", "/", "%"):
            return cost + 1, SCALAR, ""
        return cost + 1 + min(a.weight, b.weight), SCALAR, "compares the values"

    def _comprehension(self, node: Node, env: dict[str, Size]) -> Estimate:
        macro, variable = node.value
        range_cost, of = self.cost(node.args[0], env)
        count = of.items
        item = of.item or SCALAR
        inner = {**env, variable: item}
        body_cost, sizes = self.costs(node.args[1:], inner)
        per_item = 3 + body_cost
        binds = min(count * item.weight, of.weight)
        cost = range_cost + 1 + binds + count * per_item
        why = f"{macro}() over up to {count:,.0f} items at up to {per_item:,.0f} steps each"
        if macro in ("map", "filter"):
            # The list built so far is copied at every step: n steps copy up to n times all
            # it holds. Items of the range, or parts of them, add up to at most the range.
            element = sizes[-1] if macro == "map" else item
            held = count * element.weight
            if macro == "filter" or _part_of(node.args[-1], variable):
                held = min(held, of.weight)
            cost += min(count * (count + 1) / 2 * (element.weight + 1), count * (held + count))
            why += ", copying the list it builds at every step"
            return cost, Size(0, count, min(VALUE + held, _CAP), element), why
        return cost, SCALAR, why

    def _call(self, node: Node, env: dict[str, Size]) -> Estimate:
        return self._function(node.value.lstrip("."), node.args, env)

    def _method(self, node: Node, env: dict[str, Size]) -> Estimate:
        return self._function(node.value, node.args, env)

    def _function(self, name: str, args: tuple[Node, ...], env: dict[str, Size]) -> Estimate:
        cost, sizes = self.costs(args, env)
        cost += 1
        first = sizes[0] if sizes else SCALAR
        if name == "size" and len(sizes) == 1:
            return cost + first.chars / CHARS_PER_COPY, SCALAR, ""
        if name in ("contains", "startsWith", "endsWith") and len(sizes) == 2:
            scanned = first.chars + sizes[1].chars if name == "contains" else sizes[1].chars
            return cost + scanned / CHARS_PER_SCAN, SCALAR, f"{name}() scans the text"
        if name == "matches" and len(sizes) == 2:
            pattern = args[1]
            if pattern.kind == "literal" and isinstance(pattern.value, str):
                compiling, states = regex_cost(pattern.value)
                why = "matches() compiles its pattern at every evaluation, then scans the text"
            else:
                compiling = DYNAMIC_PATTERN
                states = 30 * max(sizes[1].chars, 1)
                why = "matches() with a pattern that is not a string literal: it could be any"
            return cost + compiling + first.chars * (states + 1) / 16, SCALAR, why
        if name == "dyn" and len(sizes) == 1:
            return cost, first, ""
        copied = _sum(sizes) if sizes else SCALAR
        cost += copied.weight + copied.chars / CHARS_PER_SCAN
        if name in ("string", "bytes") and len(sizes) == 1:
            # At most 4 bytes per character, or a number, time or duration written out.
            return cost, _text(4 * first.chars + 32), ""
        if name in _TO_SCALAR:
            return cost, SCALAR, ""
        # A function CEL does not have fails; were it there, it could return its arguments.
        return cost, copied, f"{name}() reads all its arguments"


def _part_of(node: Node, variable: str) -> bool:
    """True when the node is the variable or a field or item of it (``x``, ``x.a[0]``)."""
    while node.kind in ("select", "index"):
        node = node.args[0]
    return node.kind == "ident" and node.value == variable


def estimate(tree: Node, text: str) -> float:
    """The most evaluating the rule may cost, in steps (its result converted for Python)."""
    cost, result = _Estimator(text).cost(tree, {})
    return cost + VALUE * result.weight


def check(tree: Node, text: str) -> float:
    """The rule's cost; CelTooCostlyError naming the costliest part if over the limit."""
    estimator = _Estimator(text)
    cost, result = estimator.cost(tree, {})
    # The result comes back as Python objects (~0.5 us a map entry): a rule that returns
    # a large value (``context`` itself) pays for it even though it is no match.
    cost += VALUE * result.weight
    if cost > COST_LIMIT and estimator.culprit is None:
        estimator.culprit = (tree, cost, "returns a large value, which is converted for Python")
    if estimator.culprit is None:
        return cost
    node, part, why = estimator.culprit
    where = f"`{snippet(text, node)}`"
    reason = f" ({why})" if why else ""
    raise CelTooCostlyError(
        f"too expensive to evaluate: {where} may take up to {_steps(part)} steps for one message, "
        f"more than the {COST_LIMIT:,} allowed{reason}; facts are assumed as large as they may "
        f"be ({bounds.ITEMS} items a list, {bounds.STRING:,} characters a string)"
    )


def _steps(cost: float) -> str:
    return f"{cost:,.0f}" if cost < 1e15 else f"{cost:.1e}"
