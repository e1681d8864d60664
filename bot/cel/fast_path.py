"""The fast path: rules of the common shapes evaluated in Python, with CEL's semantics.

Handing the facts to CEL costs far more than CEL's evaluation (about a microsecond per
string), so rules of the common shapes (a field compared with a literal, ``in`` a list of
strings, a string in a list field, ``startsWith``/``endsWith``/``contains``, ``has()``,
joined by ``&&``, ``||`` and ``!``) are evaluated in Python: a missing field is an error, and
``||``/``&&`` absorb an error the way CEL does. Anything unusual in the data (a value of
another type, say) hands the rule to CEL itself (``DEFER``).

The shapes are found in the tree ``bot.cel.parser`` built for the checks (the rule is parsed
once). The differential tests (``tests/unit/cel/test_fast_path.py``) hold the fast path to
what CEL gives, rule by rule and error by error.

**The switch.** ``set_fast_path(False)`` sends every rule to CEL (and makes ``FirstMatch``
evaluate its rules one by one, in order); ``set_fast_path(True)`` (the default) turns it on
again. It takes effect at once, for rules already compiled too: for measuring, for ruling the
fast path out when a rule seems to misbehave, and for the differential tests.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.cel.lexer import INT64
from bot.cel.parser import Node

if TYPE_CHECKING:
    from bot.cel.facts import Facts

# ---- the switch -----------------------------------------------------------------------------

# Read on every evaluation (``bot.cel.facts``): a module attribute, the cheapest check.
enabled = True


def set_fast_path(on: bool) -> bool:
    """Evaluate the common shapes in Python (True, the default) or every rule in CEL (False);
    returns the setting it replaces."""
    global enabled
    before, enabled = enabled, on
    return before


def fast_path_enabled() -> bool:
    """Whether the common shapes are evaluated in Python."""
    return enabled


# ---- outcomes -------------------------------------------------------------------------------


class _Outcome:
    """A rule result besides true and false (``ERROR`` and ``DEFER``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ERROR = _Outcome("ERROR")  # CEL would raise: the rule does not match
DEFER = _Outcome("DEFER")  # Python cannot be sure what CEL would say: ask CEL
MISSING = object()  # not in a memo (yet)

Evaluator = Callable[["Facts"], object]  # True, False, ERROR or DEFER
Path = tuple[str, ...]
Shape = tuple[Any, ...]

# ---- the common shapes, in the checker's tree -----------------------------------------------
#
# shape    := and | or | "!" shape | relation | call
# relation := path ("==" | "!=") literal | path ("<" | "<=" | ">" | ">=") int   (either side)
#           | path "in" "[" string ("," string)* "]" | string "in" path
# call     := "has" "(" path ")" | path "." ("startsWith" | "endsWith" | "contains") "(" string ")"
# path     := ("visitor" | "conversation" | "context") ("." field)+
#
# Literals as written plainly: strings without escapes or prefixes, decimal ints. Anything
# else is left to CEL. The shapes are tuples: ("and" | "or", parts), ("not", shape),
# ("compare", path, op, literal), ("in", path, strings), ("present", path),
# ("has", path, string), ("call", path, method, string).

_ROOTS = frozenset({"visitor", "conversation", "context"})
_METHODS = frozenset({"startsWith", "endsWith", "contains"})
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ORDER = frozenset({"<", "<=", ">", ">="})
_PLAIN_STRING = re.compile(r""""[^"\\\r\n]*"|'[^'\\\r\n]*'""")
_PLAIN_INT = re.compile(r"0|[1-9][0-9]*")


class _Unsupported(Exception):
    pass


def shape(tree: Node, text: str) -> Shape | None:
    """The rule (its checked tree and its text) as one of the common shapes, or None when
    only CEL can evaluate it."""
    try:
        return _shape(tree, text)
    except _Unsupported:
        return None


def _shape(node: Node, text: str) -> Shape:
    kind, args = node.kind, node.args
    if kind in ("and", "or"):
        return (kind, tuple(_shape(part, text) for part in args))
    if kind == "not":
        return ("not", _shape(args[0], text))
    if kind == "has":
        return ("present", _path(args[0]))
    if kind == "method" and node.value in _METHODS and len(args) == 2:
        argument = _literal(args[1], text)
        if type(argument) is not str:
            raise _Unsupported
        return ("call", _path(args[0]), node.value, argument)
    if kind != "op":
        raise _Unsupported
    op, (left, right) = node.value, args
    if op == "in":
        if left.kind == "literal":
            item = _literal(left, text)
            if type(item) is not str:
                raise _Unsupported
            return ("has", _path(right), item)
        if right.kind != "list" or not right.args:
            raise _Unsupported
        items = [_literal(item, text) for item in right.args]
        if any(type(item) is not str for item in items):
            raise _Unsupported
        return ("in", _path(left), frozenset(items))
    if op not in _FLIP:
        raise _Unsupported
    if left.kind == "literal":
        op, left, right = _FLIP[op], right, left
    literal = _literal(right, text)
    if op in _ORDER and type(literal) is not int:
        raise _Unsupported
    return ("compare", _path(left), op, literal)


def _path(node: Node) -> Path:
    fields: list[str] = []
    while node.kind == "select":
        fields.append(node.value)
        node = node.args[0]
    if node.kind != "ident" or node.value not in _ROOTS or not fields:
        raise _Unsupported
    return (node.value, *reversed(fields))


def _literal(node: Node, text: str) -> str | int:
    """A string or int literal as written plainly (what the Python evaluation knows)."""
    if node.kind == "literal":
        written = text[node.start : node.end]
        if type(node.value) is str and _PLAIN_STRING.fullmatch(written):
            return node.value
        if type(node.value) is int and _PLAIN_INT.fullmatch(written):
            return node.value
    raise _Unsupported


def index(tree: Shape) -> tuple[Path, frozenset[str]] | None:
    """``field == "a"`` or ``field in ["a", "b"]``: the field and the strings that match."""
    if tree[0] == "compare" and tree[2] == "==" and isinstance(tree[3], str):
        return tree[1], frozenset({tree[3]})
    if tree[0] == "in":
        return tree[1], tree[2]
    return None


# ---- evaluation -----------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def evaluator(tree: Shape) -> Evaluator:
    """A Python function giving what CEL would: True, False, ERROR, or DEFER (ask CEL)."""
    kind = tree[0]
    if kind in ("and", "or"):
        parts = tuple(evaluator(part) for part in tree[1])
        unit = kind == "and"  # true for "and", false for "or"
        decider = not unit

        def junction(facts: Facts) -> object:
            pending: object = unit
            for part in parts:
                outcome = part(facts)
                if outcome is decider:  # decides even next to an error, as in CEL
                    return decider
                if outcome is DEFER or (outcome is ERROR and pending is not DEFER):
                    pending = outcome
            return pending

        return junction
    if kind == "not":
        inner = evaluator(tree[1])

        def negation(facts: Facts) -> object:
            outcome = inner(facts)
            return (not outcome) if isinstance(outcome, bool) else outcome

        return negation
    path: Path = tree[1]

    # Each leaf reads its field through the message's memo (``Facts.value`` on a miss): the
    # memo is read directly, this being the hot path of every message.
    if kind == "compare":
        op, literal = tree[2], tree[3]
        compare = _COMPARE[op]
        if isinstance(literal, str):

            def text_comparison(facts: Facts) -> object:
                value = facts._values.get(path, MISSING)
                if value is MISSING:
                    value = facts.value(path)
                if type(value) is str:
                    return compare(value, literal)
                return ERROR if value is ERROR else DEFER

            return text_comparison

        def int_comparison(facts: Facts) -> object:
            value = facts._values.get(path, MISSING)
            if value is MISSING:
                value = facts.value(path)
            if type(value) is int and -INT64 <= value < INT64:
                return compare(value, literal)
            return ERROR if value is ERROR else DEFER

        return int_comparison
    if kind == "in":
        members: frozenset[str] = tree[2]

        def one_of(facts: Facts) -> object:
            value = facts._values.get(path, MISSING)
            if value is MISSING:
                value = facts.value(path)
            if type(value) is str:
                return value in members
            return ERROR if value is ERROR else DEFER

        return one_of
    if kind == "present":
        parent, field = path[:-1], path[-1]

        def present(facts: Facts) -> object:
            value = facts.value(parent)
            if type(value) is dict and facts._plain(value):
                return field in value
            return ERROR if value is ERROR else DEFER

        return present
    if kind == "has":
        item: str = tree[2]

        def has(facts: Facts) -> object:
            strings = facts._strings.get(path, MISSING)
            if strings is MISSING:
                strings = facts.strings(path)
            if type(strings) is frozenset:
                return item in strings
            return strings

        return has
    method, argument = tree[2], tree[3]
    test = {"startsWith": str.startswith, "endsWith": str.endswith}.get(method)

    def call(facts: Facts) -> object:
        value = facts._values.get(path, MISSING)
        if value is MISSING:
            value = facts.value(path)
        if type(value) is not str:
            return ERROR if value is ERROR else DEFER
        return test(value, argument) if test is not None else argument in value

    return call
