"""What a regular expression costs the CEL extension (the regex crate's syntax).

An estimate of what compiling a pattern costs and how many states scan the text at once:
Unicode classes (``\\w``, ``\\d``, ``\\p{..}``) compile to large automata, "." and [...] to
small ones, repetition copies what it repeats ("x{100}" is a hundred x's, "x+" two), and
compile time grows faster than the size (a [a-z]{4096} takes 0.17 s, not 40 times [a-z]{100}).
"""

from __future__ import annotations

import re

DYNAMIC_PATTERN = 2_000_000  # the regex crate's size limit stops a compile within ~0.2 s
_CAP = 1e30  # sizes stay finite

_ESCAPE_CLASSES = {
    "w": (6000.0, 30.0),
    "W": (6000.0, 30.0),
    "d": (1000.0, 10.0),
    "D": (1000.0, 10.0),
    "s": (500.0, 5.0),
    "S": (500.0, 5.0),
    "p": (6000.0, 30.0),
    "P": (6000.0, 30.0),
}
_LITERAL = (10.0, 1.0)
_DOT = (200.0, 4.0)
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")


class _TooComplexError(Exception):
    pass


def regex_cost(pattern: str) -> tuple[float, float]:
    """What compiling the pattern costs (steps), and how many states it scans with."""
    parser = _RegexParser(pattern)
    try:
        size, states = parser.alternation(0)
    except (_TooComplexError, RecursionError):
        return DYNAMIC_PATTERN, 30.0 * len(pattern)
    if parser.caseless:  # every letter becomes a class of its cases
        size, states = size * 3, states * 2
    return min(100 + size + size * size / 50_000, DYNAMIC_PATTERN), states


class _RegexParser:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.at = 0
        self.caseless = False

    def alternation(self, depth: int) -> tuple[float, float]:
        if depth > 64:
            raise _TooComplexError
        size, states = self.sequence(depth)
        while self.at < len(self.p) and self.p[self.at] == "|":
            self.at += 1
            more = self.sequence(depth)
            size, states = size + more[0], states + more[1]
        return size, states

    def sequence(self, depth: int) -> tuple[float, float]:
        size = states = 0.0
        while self.at < len(self.p) and self.p[self.at] not in "|)":
            atom = self.atom(depth)
            times = self.repeat()
            size = min(size + atom[0] * times, _CAP)
            states = min(states + atom[1] * times, _CAP)
        return size, states

    def repeat(self) -> float:
        times = 1.0
        while self.at < len(self.p):
            char = self.p[self.at]
            if char in "*?":
                self.at += 1
            elif char == "+":
                self.at += 1
                times *= 2
            elif char == "{" and (found := _REPEAT.match(self.p, self.at)):
                low = int(found.group(1))
                high = int(found.group(3)) if found.group(3) else low + 1 if found.group(2) else low
                times *= max(1, low, high)
                self.at = found.end()
            else:
                break
            if self.at < len(self.p) and self.p[self.at] == "?":  # lazy
                self.at += 1
        return min(times, _CAP)

    def atom(self, depth: int) -> tuple[float, float]:
        char = self.p[self.at]
        self.at += 1
        if char == "(":
            if self.p.startswith("?", self.at):
                flags = re.match(r"\?(P?<[^>]*>|[a-zA-Z-]*)([:)])", self.p[self.at :])
                if flags is None:
                    raise _TooComplexError
                self.at += flags.end()
                if "i" in flags.group(1) and not flags.group(1).startswith(("P<", "<")):
                    self.caseless = True
                if flags.group(2) == ")":
                    return 0.0, 0.0
            inner = self.alternation(depth + 1)
            if self.at < len(self.p) and self.p[self.at] == ")":
                self.at += 1
            return inner
        if char == "[":
            return self.bracket()
        if char == "\\":
            return self.escape()
        if char == ".":
            return _DOT
        return _LITERAL

    def escape(self) -> tuple[float, float]:
        kind = self.p[self.at : self.at + 1]
        self.at += 1
        if kind in ("p", "P") and self.p.startswith("{", self.at):
            close = self.p.find("}", self.at)
            self.at = len(self.p) if close < 0 else close + 1
        elif kind in ("p", "P"):
            self.at += 1
        elif kind == "x" and self.p.startswith("{", self.at):
            close = self.p.find("}", self.at)
            self.at = len(self.p) if close < 0 else close + 1
        return _ESCAPE_CLASSES.get(kind, _LITERAL)

    def bracket(self) -> tuple[float, float]:
        size, states, nesting = 50.0, 4.0, 1
        if self.p.startswith("^", self.at):
            size += 1000
            self.at += 1
        if self.p.startswith("]", self.at):
            self.at += 1
        while self.at < len(self.p) and nesting:
            char = self.p[self.at]
            self.at += 1
            if char == "\\":
                more = self.escape()
                size, states = size + more[0], states + more[1]
            elif char == "[" and self.p.startswith(":", self.at):
                close = self.p.find(":]", self.at)
                self.at = len(self.p) if close < 0 else close + 2
                size += 200
            elif char == "[":
                nesting += 1
                if nesting > 64:
                    raise _TooComplexError
            elif char == "]":
                nesting -= 1
            else:
                size += 20
        return size, states
