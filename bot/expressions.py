"""CEL rules from the ops YAML: compiled once at load, evaluated in microseconds per message.

A rule sees four variables (documented in the README): ``visitor``, ``conversation``,
``context`` and ``now``. A rule that reads a field the data does not have simply does not
match (use ``has(context.domain)`` to test for presence).

Evaluating a rule through the CEL bindings costs a fraction of a microsecond, but handing the
facts to CEL costs far more (about a microsecond per string), so per message:

* rules of the common shapes (a field compared with a literal, ``in`` a list of strings, a
  string in a list field, ``startsWith``/``endsWith``/``contains``, joined by ``&&``, ``||``
  and ``!``) are evaluated in Python, with CEL's semantics: a missing field is an error, and
  ``||``/``&&`` absorb an error the way CEL does. Anything unusual in the data (a value of
  another type, say) hands the rule to CEL itself;
* the facts are converted for CEL only when a rule needs CEL, and then only the variables
  and fields the configured rules mention;
* ``Facts.matches`` remembers its answers for the message;
* ``FirstMatch`` finds the first true rule of an ordered list (route triggers, escalation
  rules) with one dictionary lookup for all the ``field == "literal"`` rules on one field.
"""

from __future__ import annotations

import logging
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import cel
from pydantic import AfterValidator

from bot import cel_check, cel_cost, fact_bounds

log = logging.getLogger(__name__)

VARIABLES = ("visitor", "conversation", "context", "now")


class _Outcome:
    """A rule result besides true and false (``ERROR`` and ``DEFER``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ERROR = _Outcome("ERROR")  # CEL would raise: the rule does not match
DEFER = _Outcome("DEFER")  # Python cannot be sure what CEL would say: ask CEL
_MISSING = object()

# What a rule needs of the facts: per variable, the fields it reads (None: all of it).
Needs = Mapping[str, frozenset[str] | None]
Evaluator = Callable[["Facts"], object]  # True, False, ERROR or DEFER
Path = tuple[str, ...]


@dataclass(frozen=True, eq=False, slots=True)
class Compiled:
    """A rule, compiled once: the CEL program and what makes evaluating it cheap."""

    source: str
    program: Any
    needs: Needs
    # Evaluates the rule in Python (None: only CEL can).
    python: Evaluator | None
    # ``field == "a"`` or ``field in ["a", "b"]``: the field and the strings that match.
    index: tuple[Path, frozenset[str]] | None


_PROGRAMS: dict[str, Compiled] = {}


def compile_rule(source: str) -> str:
    """Compile (and cache) a rule; raise ValueError with the CEL error for ops to read.

    Nothing reaches the CEL extension before ``bot.cel_check`` has parsed the rule: it is
    short, shallow (deep trees crash the extension), reads only the documented variables,
    and ``bot.cel_cost`` finds it cheap enough for facts as large as ``facts_for`` allows.
    """
    text = source.strip()
    if not text:
        raise ValueError("the rule is empty")
    if text in _PROGRAMS:
        return text
    if len(text) > MAX_RULE_CHARS:
        raise ValueError(
            f"CEL: the rule is {len(text):,} characters long, more than the {MAX_RULE_CHARS:,} "
            "allowed"
        )
    try:
        checked = cel_check.parse(text)
    except cel_check.CelTooDeepError as exc:
        raise ValueError(f"CEL: {exc}") from exc
    except cel_check.CelSyntaxError as exc:
        raise ValueError(f"CEL: {_syntax_message(text, exc)}") from exc
    unknown = sorted(cel_check.free_variables(checked) - set(VARIABLES))
    if unknown:
        raise ValueError(f"CEL: unknown variable {', '.join(unknown)} (use {', '.join(VARIABLES)})")
    missing = cel_check.unknown_function(checked)
    if missing is not None:
        raise ValueError(f"CEL: {missing}")
    try:
        cel_cost.check(checked, text)
    except cel_cost.CelTooCostlyError as exc:
        raise ValueError(f"CEL: {exc}") from exc
    try:
        program = cel.compile(text)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"CEL: {' '.join(str(exc).split())}") from exc
    _try_constant_calls(text, checked)
    tree = _parse(text)
    _PROGRAMS[text] = Compiled(
        text,
        program,
        _needs(text),
        _evaluator(tree) if tree is not None else None,
        _index(tree) if tree is not None else None,
    )
    return text


_SAMPLE_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _try_constant_calls(text: str, tree: cel_check.Node) -> None:
    """Make, now, the calls the text alone decides (``timestamp(1)``, ``int(now)``, a regex
    given as a literal): one the runtime cannot make would fail on every message, so the rule
    would never match."""
    tries = [(call, text[call.start : call.end]) for call in cel_check.constant_calls(tree)]
    tries += [  # whatever the value, the pattern must be a regex
        (call, f'"".matches({text[call.args[1].start : call.args[1].end]})')
        for call in cel_check.literal_patterns(tree)
    ]
    for call, source in tries:
        try:
            cel.compile(source).execute(cel.Context({"now": _SAMPLE_NOW}))
        except Exception as exc:  # the extension raises several types for one meaning
            reason = " ".join(str(exc).split())[:200]
            if reason.startswith("Undefined variable or function"):
                reason = f"the CEL runtime has no {call.value}() for such arguments"
            where = cel_check.snippet(text, call)
            raise ValueError(f"CEL: `{where}` cannot work: {reason}") from exc


# Real rules are a line or two; a list of a hundred names fits. The limit also bounds what
# the extension's own parser sees when it describes a syntax error (its recursion grows with
# the operators, one level each: a few thousand stay far from the ~30,000 where it crashes).
MAX_RULE_CHARS = 4096


def _syntax_message(text: str, problem: cel_check.CelSyntaxError) -> str:
    """CEL's own description of a syntax error (what ops see in CEL docs), else ours."""
    try:
        cel.compile(text)
    except (ValueError, RuntimeError) as exc:
        return " ".join(str(exc).split())
    return f"{problem} (the CEL extension would accept it; this check does not)"


Rule = Annotated[str, AfterValidator(compile_rule)]


def compiled(rule: str) -> Compiled:
    """The compiled form of a rule (compiling it now if it was not at load)."""
    return _PROGRAMS.get(rule) or _PROGRAMS[compile_rule(rule)]


class RuleSet:
    """The rules of one configuration: which facts they read, so only those go to CEL."""

    def __init__(self, rules: Iterable[str]) -> None:
        rules = list(rules)
        gathered: dict[str, set[str] | None] = {}  # one set per variable, grown in place
        for rule in rules:
            for name, fields in compiled(rule).needs.items():
                had = gathered.get(name, set())
                if had is None or fields is None:
                    gathered[name] = None
                else:
                    had |= fields
                    gathered[name] = had
        self.needs: Needs = {
            name: None if fields is None else frozenset(fields) for name, fields in gathered.items()
        }
        self.sources = frozenset(compiled(rule).source for rule in rules)
        self._covered: dict[str, bool] = {}

    def covers(self, rule: Compiled) -> bool:
        """True when everything the rule reads is among the facts the set's rules read."""
        known = self._covered.get(rule.source)
        if known is None:
            known = self._covered[rule.source] = all(
                name in self.needs
                and (
                    self.needs[name] is None
                    or (fields is not None and fields <= (self.needs[name] or frozenset()))
                )
                for name, fields in rule.needs.items()
            )
        return known


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
        code = _PROGRAMS.get(rule) or compiled(rule)
        if code.python is not None:
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
        found = self._values.get(path, _MISSING)
        if found is _MISSING:
            found = self._values[path] = self._lookup(path)
        return found

    def strings(self, path: Path) -> Any:
        """The strings of a list of strings at a path (a frozenset), else ERROR or DEFER."""
        found = self._strings.get(path, _MISSING)
        if found is _MISSING:
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
            current = current.get(name, _MISSING)
            if current is _MISSING:
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
                data = _celsafe(data)
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


# ---- what a rule reads ----------------------------------------------------------------------

_FIELD_AFTER = re.compile(r"\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)(\s*\()?")
_MENTIONS = {name: re.compile(rf"\b{name}\b") for name in VARIABLES}


def _needs(source: str) -> Needs:
    """Per variable the rule's text mentions, the fields it reads (None: it may read any).

    Conservative by construction: every mention counts (even inside a string), and a mention
    not followed by ``.field`` (``visitor["x"]``, ``size(visitor)``, ``visitor.size()``) means
    the whole variable.
    """
    needs: dict[str, frozenset[str] | None] = {}
    for name, mention in _MENTIONS.items():
        fields: set[str] | None = set()
        for found in mention.finditer(source):
            after = _FIELD_AFTER.match(source, found.end())
            if after is None or after.group(2) is not None:
                fields = None
                break
            assert fields is not None
            fields.add(after.group(1))
        else:
            if not fields:
                continue  # not mentioned
        needs[name] = frozenset(fields) if fields is not None else None
    return needs


_INT64 = 2**63


def _unchanged_as_text(value: Any) -> bool:
    """True when ``_celsafe`` would give CEL the same value (so it does not matter)."""
    kind = type(value)
    if kind is str or kind is bool or kind is float or value is None:
        return True
    if kind is int:
        return bool(-_INT64 <= value < _INT64)
    if kind is dict:
        return all(type(k) is str for k in value) and all(map(_unchanged_as_text, value.values()))
    if kind is list:
        return all(map(_unchanged_as_text, value))
    # The same, for subclasses and other mappings and sequences.
    if isinstance(value, bool | str | float | datetime):
        return True
    if isinstance(value, int):
        return -_INT64 <= value < _INT64
    if isinstance(value, Mapping):
        return all(isinstance(k, str) and _unchanged_as_text(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_unchanged_as_text(v) for v in value)
    return False


def _celsafe(value: Any) -> Any:
    """Values CEL can take: out-of-range integers and unknown types become strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)
    if isinstance(value, Mapping):
        return {str(k): _celsafe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_celsafe(v) for v in value]
    if isinstance(value, datetime):
        return value
    return str(value)[: fact_bounds.STRING]


# ---- the common shapes, in Python -----------------------------------------------------------
#
# expr     := and ("||" and)*
# and      := unary ("&&" unary)*
# unary    := "!" not | "(" expr ")" | relation
# not      := "!" not | "(" expr ")" | call         (CEL's "!" binds tighter than comparisons)
# relation := path ("==" | "!=") literal | path ("<" | "<=" | ">" | ">=") int
#           | literal ("==" | "!=") path | int ("<" | "<=" | ">" | ">=") path
#           | path "in" "[" string ("," string)* "]" | string "in" path | call
# call     := "has" "(" path ")" | path "." ("startsWith" | "endsWith" | "contains") "(" string ")"
# path     := ("visitor" | "conversation" | "context") ("." field)+
#
# Strings without escapes, decimal ints. Anything else is left to CEL.

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<op>\|\||&&|==|!=|<=|>=|<|>|!|\(|\)|\[|\]|,|\.)
    | (?P<str>"[^"\\\r\n]*"|'[^'\\\r\n]*')
    | (?P<int>0|[1-9][0-9]*)(?![A-Za-z0-9_.])
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_ROOTS = frozenset({"visitor", "conversation", "context"})
_METHODS = frozenset({"startsWith", "endsWith", "contains"})
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_ORDER = frozenset({"<", "<=", ">", ">="})

Token = tuple[str, Any]  # kind (op, str, int, ident, end) and value
Node = tuple[Any, ...]


def _tokens(source: str) -> list[Token] | None:
    out: list[Token] = []
    at = 0
    while True:
        while at < len(source) and source[at].isspace():
            at += 1
        if at == len(source):
            out.append(("end", None))
            return out
        found = _TOKEN.match(source, at)
        if found is None or found.end() == at:
            return None
        kind = found.lastgroup or ""
        text = found.group(kind)
        value: Any = text[1:-1] if kind == "str" else int(text) if kind == "int" else text
        if kind == "int" and value >= _INT64:
            return None
        out.append(("op" if kind == "op" else kind, value))
        at = found.end()


class _Unsupported(Exception):
    pass


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.at = 0

    def peek(self) -> Token:
        return self.tokens[self.at]

    def take(self) -> Token:
        token = self.tokens[self.at]
        if token[0] != "end":
            self.at += 1
        return token

    def expect(self, op: str) -> None:
        if self.take() != ("op", op):
            raise _Unsupported

    def parse(self) -> Node:
        node = self.expr()
        if self.peek()[0] != "end":
            raise _Unsupported
        return node

    def expr(self) -> Node:
        parts = [self.conjunction()]
        while self.peek() == ("op", "||"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else ("or", tuple(parts))

    def conjunction(self) -> Node:
        parts = [self.unary()]
        while self.peek() == ("op", "&&"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else ("and", tuple(parts))

    def unary(self) -> Node:
        if self.peek() == ("op", "!"):
            self.take()
            return ("not", self.negated())
        if self.peek() == ("op", "("):
            return self.group()
        return self.relation()

    def negated(self) -> Node:
        if self.peek() == ("op", "!"):
            self.take()
            return ("not", self.negated())
        if self.peek() == ("op", "("):
            return self.group()
        node = self.relation()
        if node[0] not in ("call", "present"):
            raise _Unsupported
        return node

    def group(self) -> Node:
        self.expect("(")
        node = self.expr()
        self.expect(")")
        return node

    def path(self) -> tuple[Path, str | None]:
        """A path, and the method called on it (if any) with its string argument."""
        kind, name = self.take()
        if kind != "ident" or name not in _ROOTS:
            raise _Unsupported
        path = [name]
        while self.peek() == ("op", "."):
            self.take()
            kind, field = self.take()
            if kind != "ident":
                raise _Unsupported
            if self.peek() == ("op", "("):
                if field not in _METHODS or len(path) < 2:
                    raise _Unsupported
                return tuple(path), field
            path.append(field)
        if len(path) < 2:
            raise _Unsupported
        return tuple(path), None

    def string(self) -> str:
        kind, value = self.take()
        if kind != "str":
            raise _Unsupported
        return str(value)

    def relation(self) -> Node:
        kind, value = self.peek()
        if (kind, value) == ("ident", "has"):
            self.take()
            self.expect("(")
            path, method = self.path()
            if method is not None:
                raise _Unsupported
            self.expect(")")
            return ("present", path)
        if kind == "ident":
            path, method = self.path()
            if method is not None:
                self.expect("(")
                argument = self.string()
                self.expect(")")
                return ("call", path, method, argument)
            kind, op = self.take()
            if kind == "ident" and op == "in":
                self.expect("[")
                items = [self.string()]
                while self.peek() == ("op", ","):
                    self.take()
                    items.append(self.string())
                self.expect("]")
                return ("in", path, frozenset(items))
            kind_lit, literal = self.take()
            if kind != "op" or op not in _FLIP or kind_lit not in ("str", "int"):
                raise _Unsupported
            if op in _ORDER and kind_lit != "int":
                raise _Unsupported
            return ("compare", path, op, literal)
        if kind in ("str", "int"):
            self.take()
            kind_op, op = self.take()
            if kind == "str" and (kind_op, op) == ("ident", "in"):
                path, method = self.path()
                if method is not None:
                    raise _Unsupported
                return ("has", path, value)
            if kind_op != "op" or op not in _FLIP or (op in _ORDER and kind != "int"):
                raise _Unsupported
            path, method = self.path()
            if method is not None:
                raise _Unsupported
            return ("compare", path, _FLIP[op], value)
        raise _Unsupported


def _parse(source: str) -> Node | None:
    """The rule as a tree of the common shapes, or None when only CEL can evaluate it."""
    tokens = _tokens(source)
    if tokens is None:
        return None
    try:
        return _Parser(tokens).parse()
    except _Unsupported:
        return None


def _index(tree: Node) -> tuple[Path, frozenset[str]] | None:
    if tree[0] == "compare" and tree[2] == "==" and isinstance(tree[3], str):
        return tree[1], frozenset({tree[3]})
    if tree[0] == "in":
        return tree[1], tree[2]
    return None


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _evaluator(tree: Node) -> Evaluator:
    """A Python function giving what CEL would: True, False, ERROR, or DEFER (ask CEL)."""
    kind = tree[0]
    if kind in ("and", "or"):
        parts = tuple(_evaluator(part) for part in tree[1])
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
        inner = _evaluator(tree[1])

        def negation(facts: Facts) -> object:
            outcome = inner(facts)
            return (not outcome) if isinstance(outcome, bool) else outcome

        return negation
    path: Path = tree[1]

    # Each leaf reads its field through the message's memo (``Facts.value`` on a miss).
    if kind == "compare":
        op, literal = tree[2], tree[3]
        compare = _COMPARE[op]
        if isinstance(literal, str):

            def text_comparison(facts: Facts) -> object:
                value = facts._values.get(path, _MISSING)
                if value is _MISSING:
                    value = facts.value(path)
                if type(value) is str:
                    return compare(value, literal)
                return ERROR if value is ERROR else DEFER

            return text_comparison

        def int_comparison(facts: Facts) -> object:
            value = facts._values.get(path, _MISSING)
            if value is _MISSING:
                value = facts.value(path)
            if type(value) is int and -_INT64 <= value < _INT64:
                return compare(value, literal)
            return ERROR if value is ERROR else DEFER

        return int_comparison
    if kind == "in":
        members: frozenset[str] = tree[2]

        def one_of(facts: Facts) -> object:
            value = facts._values.get(path, _MISSING)
            if value is _MISSING:
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
            strings = facts._strings.get(path, _MISSING)
            if strings is _MISSING:
                strings = facts.strings(path)
            if type(strings) is frozenset:
                return item in strings
            return strings

        return has
    method, argument = tree[2], tree[3]
    test = {"startsWith": str.startswith, "endsWith": str.endswith}.get(method)

    def call(facts: Facts) -> object:
        value = facts._values.get(path, _MISSING)
        if value is _MISSING:
            value = facts.value(path)
        if type(value) is not str:
            return ERROR if value is ERROR else DEFER
        return test(value, argument) if test is not None else argument in value

    return call
