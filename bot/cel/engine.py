"""CEL rules from the ops YAML: checked and compiled once at load, evaluated per message.

A rule sees four variables (documented in the README): ``visitor``, ``conversation``,
``context`` and ``now``. A rule that reads a field the data does not have simply does not
match (use ``has(context.domain)`` to test for presence).

``compile_rule`` parses a rule once (``bot.cel.parser``), checks the tree (``bot.cel.check``,
``bot.cel.cost``), compiles it with the CEL extension, and keeps what makes evaluating it
cheap: which fields it reads (so only those go to CEL, ``RuleSet``) and, for the common
shapes, a Python evaluation (``bot.cel.fast_path``). ``bot.cel.facts`` evaluates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import cel
from pydantic import AfterValidator

from bot.cel import check, cost, fast_path
from bot.cel.check import Needs
from bot.cel.fast_path import Evaluator, Path
from bot.cel.lexer import CelSyntaxError
from bot.cel.parser import CelTooDeepError, Node, parse

VARIABLES = ("visitor", "conversation", "context", "now")


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
cached = _PROGRAMS.get  # a rule's compiled form if it was compiled (the per-message lookup)


def compile_rule(source: str) -> str:
    """Compile (and cache) a rule; raise ValueError with the CEL error for ops to read.

    Nothing reaches the CEL extension before ``bot.cel.parser`` has parsed the rule: it is
    short, shallow (deep trees crash the extension), reads only the documented variables,
    and ``bot.cel.cost`` finds it cheap enough for facts as large as ``facts_for`` allows.
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
        checked = parse(text)
    except CelTooDeepError as exc:
        raise ValueError(f"CEL: {exc}") from exc
    except CelSyntaxError as exc:
        raise ValueError(f"CEL: {_syntax_message(text, exc)}") from exc
    needs = check.reads(checked)
    unknown = sorted(set(needs) - set(VARIABLES))
    if unknown:
        raise ValueError(f"CEL: unknown variable {', '.join(unknown)} (use {', '.join(VARIABLES)})")
    missing = check.unknown_function(checked)
    if missing is not None:
        raise ValueError(f"CEL: {missing}")
    try:
        cost.check(checked, text)
    except cost.CelTooCostlyError as exc:
        raise ValueError(f"CEL: {exc}") from exc
    try:
        program = cel.compile(text)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"CEL: {' '.join(str(exc).split())}") from exc
    _try_constant_calls(text, checked)
    # The checked tree serves the fast path too: the rule is parsed once.
    tree = fast_path.shape(checked, text)
    _PROGRAMS[text] = Compiled(
        text,
        program,
        needs,
        fast_path.evaluator(tree) if tree is not None else None,
        fast_path.index(tree) if tree is not None else None,
    )
    return text


_SAMPLE_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _try_constant_calls(text: str, tree: Node) -> None:
    """Make, now, the calls the text alone decides (``timestamp(1)``, ``int(now)``, a regex
    given as a literal): one the runtime cannot make would fail on every message, so the rule
    would never match."""
    tries = [(call, text[call.start : call.end]) for call in check.constant_calls(tree)]
    tries += [  # whatever the value, the pattern must be a regex
        (call, f'"".matches({text[call.args[1].start : call.args[1].end]})')
        for call in check.literal_patterns(tree)
    ]
    for call, source in tries:
        try:
            cel.compile(source).execute(cel.Context({"now": _SAMPLE_NOW}))
        except Exception as exc:  # the extension raises several types for one meaning
            reason = " ".join(str(exc).split())[:200]
            if reason.startswith("Undefined variable or function"):
                reason = f"the CEL runtime has no {call.value}() for such arguments"
            where = check.snippet(text, call)
            raise ValueError(f"CEL: `{where}` cannot work: {reason}") from exc


# Real rules are a line or two; a list of a hundred names fits. The limit also bounds what
# the extension's own parser sees when it describes a syntax error (its recursion grows with
# the operators, one level each: a few thousand stay far from the ~30,000 where it crashes).
MAX_RULE_CHARS = 4096


def _syntax_message(text: str, problem: CelSyntaxError) -> str:
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
