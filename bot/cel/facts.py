"""Evaluating rules against one message's facts: ``Facts`` and ``FirstMatch``.

Per message:

* rules of the common shapes are evaluated in Python (``bot.cel.fast_path``, switchable off);
* the facts are converted for CEL only when a rule needs CEL, and then only the variables
  and fields the configured rules read (``RuleSet.needs``);
* ``Facts.matches`` remembers its answers for the message;
* ``FirstMatch`` finds the first true rule of an ordered list (route triggers, escalation
  rules) with one dictionary lookup for all the ``field == "literal"`` rules on one field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import cel

from bot.cel import bounds, fast_path
from bot.cel.check import Needs
from bot.cel.engine import Compiled, RuleSet, cached, compiled
from bot.cel.fast_path import DEFER, ERROR, MISSING, Path
from bot.cel.lexer import INT64

log = logging.getLogger(__name__)


class Facts:
    """What rules are evaluated against: one message's facts, converted for CEL on demand."""

    __slots__ = (
        "_raw",
        "_rules",
        "_data",
        "_full",
        "_partial",
        "_results",
        "_values",
        "_plain_keys",
        "_partial_covers",
        "_strings",
    )

    def __init__(self, data: Mapping[str, Any], rules: RuleSet | None = None) -> None:
        self._raw = dict(data)
        self._rules = rules
        self._data: dict[str, Any] | None = None
        self._full: Any = None
        self._partial: Any = None  # False: the rules' facts alone cannot go to CEL
        self._results: dict[str, bool] = {}
        self._values: dict[Path, Any] = {}
        self._strings: dict[Path, Any] = {}
        self._plain_keys: dict[int, bool] = {}  # by id: the dictionaries live as long
        self._partial_covers: frozenset[str] = frozenset()  # rules the partial context serves

    @property
    def data(self) -> dict[str, Any]:
        """The facts as CEL sees them (values CEL cannot hold are text)."""
        self._context()
        assert self._data is not None
        return self._data

    def matches(self, rule: str) -> bool:
        """True only when the rule evaluates to true; errors and non-booleans are no match."""
        result = self._results.get(rule)
        if result is None:
            result = self._results[rule] = self.evaluate(rule)
        return result

    def matches_all(self, rules: Iterable[str]) -> list[bool]:
        """``evaluate`` for each rule."""
        evaluate = self.evaluate
        return [evaluate(rule) for rule in rules]

    def evaluate(self, rule: str) -> bool:
        """``matches``, evaluated now (not looked up among earlier answers, nor kept)."""
        code = cached(rule) or compiled(rule)
        if code.python is not None and fast_path.enabled:
            outcome = code.python(self)
            if outcome is not DEFER:
                return outcome is True
        context = self._partial if code.source in self._partial_covers else self._context(code)
        try:
            return code.program.execute(context) is True
        except Exception as exc:  # any failure to evaluate is "no match", never a silent bot
            log.debug("rule %r did not evaluate: %s", rule, exc)
            return False

    def value(self, path: Path) -> Any:
        """The value at a path (``context.domain``), ERROR if missing, DEFER if not plain.

        Plain means what CEL would see too: dictionaries with string keys on the way (the
        facts become text when CEL cannot hold some value, and keys become strings then).
        """
        found = self._values.get(path, MISSING)
        if found is MISSING:
            found = self._values[path] = self._lookup(path)
        return found

    def strings(self, path: Path) -> Any:
        """The strings of a list of strings at a path (a frozenset), else ERROR or DEFER."""
        found = self._strings.get(path, MISSING)
        if found is MISSING:
            value = self.value(path)
            if type(value) is list and all(type(v) is str for v in value):
                found = frozenset(value)
            else:
                found = ERROR if value is ERROR else DEFER
            self._strings[path] = found
        return found

    def _plain(self, mapping: dict[Any, Any]) -> bool:
        plain = self._plain_keys.get(id(mapping))
        if plain is None:
            plain = self._plain_keys[id(mapping)] = all(type(k) is str for k in mapping)
        return plain

    def _lookup(self, path: Path) -> Any:
        current: Any = self._raw
        missing: object = DEFER  # a variable the facts do not have: CEL's error, not ours
        for name in path:
            if type(current) is not dict or not self._plain(current):
                return DEFER
            current = current.get(name, MISSING)
            if current is MISSING:
                return missing
            missing = ERROR
        return current

    def _context(self, rule: Compiled | None = None) -> Any:
        """The CEL context for a rule: the facts the rule set reads if they cover the rule."""
        rules = self._rules
        if rule is not None and rules is not None:
            if self._partial is None:
                self._partial = self._partial_context(rules.needs) or False
                if self._partial is not False:
                    self._partial_covers = rules.sources
            if self._partial is not False and rules.covers(rule):
                return self._partial
        if self._full is None:
            data = self._raw
            try:
                self._full = cel.Context(data)
            except (ValueError, TypeError, OverflowError):
                # Something CEL cannot hold (an object of another type, say): keep it as text.
                data = celsafe(data)
                self._full = cel.Context(data)
            self._data = data
        return self._full

    def _partial_context(self, needs: Needs) -> Any:
        """Only the variables and fields the rules read, if CEL sees them as it would all.

        The whole facts become text when any value cannot go to CEL; so the part is only
        used when it is plain (text would leave it as it is), else the rules get the whole.
        """
        part: dict[str, Any] = {}
        for name, fields in needs.items():
            if name in self._raw:
                value = self._raw[name]
                if fields is not None and type(value) is dict:
                    value = {f: value[f] for f in fields if f in value}
                part[name] = value
        if not _unchanged_as_text(part):
            return None
        try:
            return cel.Context(part)
        except (ValueError, TypeError, OverflowError):
            return None


class FirstMatch:
    """The first true rule of an ordered list (None: no rule there), evaluating few rules.

    Rules of the form ``field == "literal"`` or ``field in ["a", "b"]`` are looked up in one
    table per field; the others are evaluated in order, only before the first indexed match.
    """

    def __init__(self, rules: Sequence[str | None]) -> None:
        self.rules = tuple(rules)
        tables: dict[Path, dict[str, list[int]]] = {}
        members: dict[Path, list[int]] = {}
        others: list[int] = []
        for position, rule in enumerate(self.rules):
            if rule is None:
                continue
            index = compiled(rule).index
            if index is None:
                others.append(position)
                continue
            path, literals = index
            members.setdefault(path, []).append(position)
            table = tables.setdefault(path, {})
            for literal in literals:
                table.setdefault(literal, []).append(position)
        self._tables = {path: {k: tuple(v) for k, v in t.items()} for path, t in tables.items()}
        self._members = {path: tuple(v) for path, v in members.items()}
        self._others = tuple(others)

    def first(self, facts: Facts, allowed: Sequence[bool] | None = None) -> int | None:
        """The position of the first rule that is true and ``allowed`` (default: all are)."""
        if not fast_path.enabled:  # every rule through CEL, in order
            return next(
                (
                    position
                    for position, rule in enumerate(self.rules)
                    if rule is not None
                    and (allowed is None or allowed[position])
                    and facts.evaluate(rule)
                ),
                None,
            )
        best = len(self.rules)
        others: Sequence[int] = self._others
        for path, table in self._tables.items():
            value = facts.value(path)
            if type(value) is str:
                for position in table.get(value, ()):
                    if position >= best:
                        break
                    if allowed is None or allowed[position]:
                        best = position
                        break
            elif value is not ERROR:  # not a plain string: evaluate those rules one by one
                others = sorted((*others, *self._members[path]))
        rules, evaluate = self.rules, facts.evaluate
        for position in others:
            if position >= best:
                break
            if (allowed is None or allowed[position]) and evaluate(
                rules[position]  # type: ignore[arg-type]  # None is in no list
            ):
                return position
        return best if best < len(self.rules) else None


def _unchanged_as_text(value: Any) -> bool:
    """True when ``celsafe`` would give CEL the same value (so it does not matter)."""
    kind = type(value)
    if kind is str or kind is bool or kind is float or value is None:
        return True
    if kind is int:
        return bool(-INT64 <= value < INT64)
    if kind is dict:
        return all(type(k) is str for k in value) and all(map(_unchanged_as_text, value.values()))
    if kind is list:
        return all(map(_unchanged_as_text, value))
    # The same, for subclasses and other mappings and sequences.
    if isinstance(value, bool | str | float | datetime):
        return True
    if isinstance(value, int):
        return -INT64 <= value < INT64
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _unchanged_as_text(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_unchanged_as_text(v) for v in value)
    return False


def celsafe(value: Any) -> Any:
    """Values CEL can take: out-of-range integers and unknown types become strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return value if -INT64 <= value < INT64 else str(value)
    if isinstance(value, Mapping):
        return {str(k): celsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [celsafe(v) for v in value]
    if isinstance(value, datetime):
        return value
    return str(value)[: bounds.STRING]
