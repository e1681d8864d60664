"""CEL rules from the ops YAML: compiled once at load, evaluated in microseconds per message.

A rule sees four variables (documented in the README): ``visitor``, ``conversation``,
``context`` and ``now``. A rule that reads a field the data does not have simply does not
match (use ``has(context.domain)`` to test for presence).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import cel
from pydantic import AfterValidator

log = logging.getLogger(__name__)

VARIABLES = ("visitor", "conversation", "context", "now")
_PROGRAMS: dict[str, Any] = {}


def compile_rule(source: str) -> str:
    """Compile (and cache) a rule; raise ValueError with the CEL error for ops to read."""
    text = source.strip()
    if not text:
        raise ValueError("the rule is empty")
    if text in _PROGRAMS:
        return text
    try:
        program = cel.compile(text)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"CEL: {' '.join(str(exc).split())}") from exc
    unknown = sorted(set(program.references()["variables"]) - set(VARIABLES))
    if unknown:
        raise ValueError(f"CEL: unknown variable {', '.join(unknown)} (use {', '.join(VARIABLES)})")
    _PROGRAMS[text] = program
    return text


Rule = Annotated[str, AfterValidator(compile_rule)]


class Facts:
    """What rules are evaluated against, converted for CEL once per message."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)
        try:
            self._context = cel.Context(self.data)
        except (ValueError, TypeError, OverflowError):
            # Something CEL cannot hold (an integer beyond 64 bits, say): keep it as text.
            self.data = _celsafe(self.data)
            self._context = cel.Context(self.data)

    def matches(self, rule: str) -> bool:
        """True only when the rule evaluates to true; errors and non-booleans are no match."""
        program = _PROGRAMS.get(rule) or _PROGRAMS[compile_rule(rule)]
        try:
            return program.execute(self._context) is True
        except Exception as exc:  # any failure to evaluate is "no match", never a silent bot
            log.debug("rule %r did not evaluate: %s", rule, exc)
            return False


_INT64 = 2**63


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
    return str(value)
