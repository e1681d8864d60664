"""A CEL parser in Python, so a rule is known to be safe before the CEL extension sees it.

The ``cel`` extension evaluates a rule by recursion on its tree, and a long operator chain such
as ``1 + 1 + ... + 1`` is a tree one level deeper per operator: deep enough, it overflows the
C stack and the process dies. Its own parser refuses deep brackets, not long chains. This
parser builds the same tree, refuses it past ``MAX_DEPTH``, and tells which variables a rule
reads (a macro's iteration variable is bound, not unknown). ``bot.cel_cost`` estimates from
the tree what evaluating the rule may cost.

The grammar is CEL's (https://github.com/google/cel-spec/blob/master/doc/langdef.md), with
the ``cel`` extension's reading where the two differ (a number may start with ``0``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Depth of the tree as CEL builds it: every operator, call, member access, index and literal
# nests one level, and so does each bracket the parser descends into. ``&&`` and ``||``
# chains are balanced by CEL, so n terms add only log2(n) levels. Real rules stay below 15;
# the extension's parser stops at 96 brackets, and its evaluator needs about 500 bytes of
# stack per level (it crashes near 20,000 levels on an 8 MiB stack, 2,000 on a 1 MiB one).
MAX_DEPTH = 32

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
KEYWORDS = frozenset({"true", "false", "null", "in"})
RESERVED = frozenset(
    "as break const continue else for function if import let loop namespace package return "
    "var void while".split()
)


class CelSyntaxError(ValueError):
    """The text is not a CEL expression."""


class CelTooDeepError(ValueError):
    """The expression nests deeper than ``MAX_DEPTH``."""


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """One node of a CEL expression.

    ``kind`` is one of: ``literal`` (``value``), ``ident`` (``value``: the name, with its
    leading dot if written), ``select`` (``value``: the field; ``args``: the operand),
    ``has`` (``args``: a select), ``index``, ``call`` (``value``: the function),
    ``method`` (``value``: the function; ``args[0]``: the target), ``list``, ``map``
    (``args``: key, value, key, value...), ``struct`` (``value``: type name and field names),
    ``not``, ``neg``, ``and``, ``or``, ``op`` (``value``: a binary operator), ``cond``, and
    ``comprehension`` (``value``: macro and variable; ``args``: the range, then the body).
    """

    kind: str
    args: tuple[Node, ...]
    value: Any
    start: int
    end: int
    depth: int


# ---- tokens -----------------------------------------------------------------------------

_SPACE = frozenset(" \t\n\r\f")
_DIGITS = "0123456789"
_DIGITS_SET = frozenset(_DIGITS)
_IDENT = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_FLOAT = re.compile(r"[0-9]*\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+")
_INT = re.compile(r"0x[0-9a-fA-F]+[uU]?|[0-9]+[uU]?")
_STRING_START = re.compile(r"([bB]?)([rR]?)(\"\"\"|'''|\"|')")
_PUNCT = ("==", "!=", "<=", ">=", "&&", "||", *"<>!+-*/%?:.,()[]{}")
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}
_INT64 = 2**63
_UINT64 = 2**64


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # int, uint, float, string, bytes, ident, a keyword or punctuation, eof
    value: Any
    start: int
    end: int


def _where(text: str, at: int) -> str:
    line = text.count("\n", 0, at) + 1
    column = at - (text.rfind("\n", 0, at) + 1) + 1
    return f"{line}:{column}"


def _syntax(text: str, at: int, message: str) -> CelSyntaxError:
    return CelSyntaxError(f"syntax error at {_where(text, at)}: {message}")


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    at, end = 0, len(text)
    while True:
        while at < end and text[at] in _SPACE:
            at += 1
        if text.startswith("//", at):
            newline = text.find("\n", at)
            at = end if newline < 0 else newline
            continue
        if at >= end:
            out.append(_Token("eof", None, end, end))
            return out
        char = text[at]
        string = _STRING_START.match(text, at) if char in "bBrR\"'" else None
        if string is not None:
            token = _string(text, at, string)
        elif char in _DIGITS or (char == "." and text[at + 1 : at + 2] in _DIGITS_SET):
            token = _number(text, at)
        elif (ident := _IDENT.match(text, at)) is not None:
            word = ident.group()
            token = _Token(word if word in KEYWORDS else "ident", word, at, ident.end())
        else:
            punct = next((p for p in _PUNCT if text.startswith(p, at)), None)
            if punct is None:
                raise _syntax(text, at, f"unexpected character {char!r}")
            token = _Token(punct, punct, at, at + len(punct))
        out.append(token)
        at = token.end


def _number(text: str, at: int) -> _Token:
    # The longest match wins, as in CEL's lexer: "1.5" is a double, "0x1F" an int.
    candidates = [m for m in (_FLOAT.match(text, at), _INT.match(text, at)) if m is not None]
    found = max(candidates, key=lambda m: m.end())
    word = found.group()
    if found.re is _FLOAT:
        value = float(word)
        if value == float("inf"):
            raise _syntax(text, at, f"number {word} is out of range")
        return _Token("float", value, at, found.end())
    unsigned = word[-1] in "uU"
    digits = word[:-1] if unsigned else word
    number = int(digits, 16) if digits.startswith("0x") else int(digits)
    if number >= (_UINT64 if unsigned else _INT64 + 1):  # 2**63 only after a minus sign
        raise _syntax(text, at, f"number {word} is out of range")
    return _Token("uint" if unsigned else "int", number, at, found.end())


def _string(text: str, at: int, start: re.Match[str]) -> _Token:
    is_bytes, raw, quote = bool(start.group(1)), bool(start.group(2)), start.group(3)
    triple = len(quote) == 3
    pos, end = start.end(), len(text)
    parts: list[str | bytes] = []
    while True:
        if pos >= end:
            raise _syntax(text, at, "the string is not closed")
        if text.startswith(quote, pos):
            pos += len(quote)
            break
        char = text[pos]
        if not triple and char in "\r\n":
            raise _syntax(text, pos, "a line break inside a quoted string (use ''' or \"\"\")")
        if char == "\\" and not raw:
            piece, pos = _escape(text, pos, is_bytes)
            parts.append(piece)
            continue
        parts.append(char)
        pos += 1
    if is_bytes:
        value: Any = b"".join(p if isinstance(p, bytes) else p.encode() for p in parts)
        return _Token("bytes", value, at, pos)
    return _Token("string", "".join(str(p) for p in parts), at, pos)


def _escape(text: str, pos: int, is_bytes: bool) -> tuple[str | bytes, int]:
    kind = text[pos + 1 : pos + 2]
    if kind in _ESCAPES:
        return _ESCAPES[kind], pos + 2
    if kind in ("x", "X", "u", "U") or kind.isdigit():
        size = {"x": 2, "X": 2, "u": 4, "U": 8}.get(kind, 3)
        digits = text[pos + 2 : pos + 2 + size] if not kind.isdigit() else text[pos + 1 : pos + 4]
        octal = kind.isdigit()
        valid = re.fullmatch(r"[0-3][0-7]{2}" if octal else rf"[0-9a-fA-F]{{{size}}}", digits)
        if valid and not (is_bytes and kind in ("u", "U")):
            code = int(digits, 8 if octal else 16)
            after = pos + (4 if octal else 2 + size)
            if is_bytes:
                return bytes([code]), after
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise _syntax(text, pos, f"\\{kind}{digits} is not a Unicode character")
            return chr(code), after
    raise _syntax(text, pos, f"invalid escape \\{kind}")


# ---- the tree ---------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokens(text)
        self.at = 0
        self.nesting = 0

    # Tokens.

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.tokens[self.at]
        if token.kind != "eof":
            self.at += 1
        return token

    def accept(self, kind: str) -> bool:
        if self.peek().kind == kind:
            self.take()
            return True
        return False

    def expect(self, kind: str) -> _Token:
        token = self.peek()
        if token.kind != kind:
            raise self.unexpected(f"expected {kind!r}")
        return self.take()

    def unexpected(self, wanted: str) -> CelSyntaxError:
        token = self.peek()
        found = "the end of the rule"
        if token.kind != "eof":
            found = repr(self.text[token.start : token.end])
        return _syntax(self.text, token.start, f"{wanted}, found {found}")

    # Nodes.

    def node(self, kind: str, args: tuple[Node, ...], value: Any, start: int, end: int) -> Node:
        depth = 1 + max((a.depth for a in args), default=0)
        if kind in ("and", "or"):  # balanced by CEL: n terms add log2(n) levels
            depth = max(a.depth for a in args) + (len(args) - 1).bit_length()
        if depth > MAX_DEPTH:
            raise _too_deep()
        return Node(kind, args, value, start, end, depth)

    # Grammar, from the loosest binding down.

    def parse(self) -> Node:
        tree = self.expr()
        if self.peek().kind != "eof":
            raise self.unexpected("expected an operator or the end of the rule")
        return tree

    def expr(self) -> Node:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise _too_deep()
        condition = self.disjunction()
        if self.accept("?"):
            then = self.disjunction()
            self.expect(":")
            otherwise = self.expr()
            condition = self.node(
                "cond", (condition, then, otherwise), None, condition.start, otherwise.end
            )
        self.nesting -= 1
        return condition

    def disjunction(self) -> Node:
        terms = [self.conjunction()]
        while self.accept("||"):
            terms.append(self.conjunction())
        if len(terms) == 1:
            return terms[0]
        return self.node("or", tuple(terms), None, terms[0].start, terms[-1].end)

    def conjunction(self) -> Node:
        terms = [self.relation()]
        while self.accept("&&"):
            terms.append(self.relation())
        if len(terms) == 1:
            return terms[0]
        return self.node("and", tuple(terms), None, terms[0].start, terms[-1].end)

    def relation(self) -> Node:
        left = self.addition()
        while self.peek().kind in ("<", "<=", ">=", ">", "==", "!=", "in"):
            op = self.take().kind
            right = self.addition()
            left = self.node("op", (left, right), op, left.start, right.end)
        return left

    def addition(self) -> Node:
        left = self.multiplication()
        while self.peek().kind in ("+", "-"):
            op = self.take().kind
            right = self.multiplication()
            left = self.node("op", (left, right), op, left.start, right.end)
        return left

    def multiplication(self) -> Node:
        left = self.unary()
        while self.peek().kind in ("*", "/", "%"):
            op = self.take().kind
            right = self.unary()
            left = self.node("op", (left, right), op, left.start, right.end)
        return left

    def unary(self) -> Node:
        first = self.peek()
        if first.kind == "!":
            ops = []
            while self.peek().kind == "!":
                ops.append(self.take())
            node = self.member()
            for op in reversed(ops):
                node = self.node("not", (node,), None, op.start, node.end)
            return node
        if first.kind == "-" and not self.signed_number():
            # As in CEL, "--1" negates twice; only a single "-" is a number's own sign.
            ops = []
            while self.peek().kind == "-":
                ops.append(self.take())
            node = self.member()
            for op in reversed(ops):
                node = self.node("neg", (node,), None, op.start, node.end)
            return node
        return self.member()

    def signed_number(self) -> bool:
        """A minus sign that belongs to the number after it (CEL's ``-9223372036854775808``)."""
        return (
            self.peek().kind == "-"
            and self.peek(1).kind in ("int", "float")
            and (self.at == 0 or self.tokens[self.at - 1].kind != "-")
        )

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.accept("."):
                if self.peek().kind != "ident":
                    raise self.unexpected("expected a field name after '.'")
                name = self.take()
                if self.peek().kind == "(":
                    self.take()
                    args = self.arguments(")")
                    end = self.expect(")").end
                    node = self.method(node, name.value, args, end)
                else:
                    node = self.node("select", (node,), name.value, node.start, name.end)
            elif self.accept("["):
                index = self.expr()
                end = self.expect("]").end
                node = self.node("index", (node, index), None, node.start, end)
            else:
                return node

    def method(self, target: Node, name: str, args: list[Node], end: int) -> Node:
        arity = (2, 3) if name == "map" else (2,)
        if name not in MACROS or len(args) not in arity:
            return self.node("method", (target, *args), name, target.start, end)
        variable = args[0]
        if variable.kind != "ident" or variable.value.startswith("."):
            raise _syntax(self.text, variable.start, f"{name}(): the first argument must be a name")
        return self.node(
            "comprehension",
            (target, *args[1:]),
            (name, variable.value),
            target.start,
            end,
        )

    def arguments(self, closing: str, trailing_comma: bool = False) -> list[Node]:
        args: list[Node] = []
        if trailing_comma and self.peek().kind == ",":  # "[,]": the extension accepts it
            self.take()
            return args
        while self.peek().kind != closing:
            args.append(self.expr())
            if not self.accept(","):
                break
            if trailing_comma and self.peek().kind == closing:
                break
            if self.peek().kind == closing:
                raise self.unexpected("expected a value after ','")
        return args

    def primary(self) -> Node:
        token = self.peek()
        kind = token.kind
        if kind == "-" and self.signed_number():
            self.take()
            number = self.take()
            return self.node("literal", (), -number.value, token.start, number.end)
        if kind == "int" and token.value == _INT64:
            raise _syntax(self.text, token.start, "number 9223372036854775808 is out of range")
        if kind in ("int", "uint", "float", "string", "bytes"):
            self.take()
            return self.node("literal", (), token.value, token.start, token.end)
        if kind in ("true", "false", "null"):
            self.take()
            value = {"true": True, "false": False, "null": None}[kind]
            return self.node("literal", (), value, token.start, token.end)
        if kind == "(":
            self.take()
            inner = self.expr()
            self.expect(")")
            return inner
        if kind == "[":
            self.take()
            items = self.arguments("]", trailing_comma=True)
            end = self.expect("]").end
            return self.node("list", tuple(items), None, token.start, end)
        if kind == "{":
            self.take()
            return self.map_literal(token.start)
        if kind in (".", "ident"):
            return self.name()
        raise self.unexpected("expected a value")

    def map_literal(self, start: int) -> Node:
        parts: list[Node] = []
        if self.peek().kind == "," and self.peek(1).kind == "}":  # "{,}", as the extension
            self.take()
        while self.peek().kind != "}":
            parts.append(self.expr())
            self.expect(":")
            parts.append(self.expr())
            if not self.accept(","):
                break
        end = self.expect("}").end
        return self.node("map", tuple(parts), None, start, end)

    def name(self) -> Node:
        start = self.peek().start
        dot = "." if self.accept(".") else ""
        if self.peek().kind != "ident":
            raise self.unexpected("expected a name")
        first = self.take()
        # A message literal: a dotted type name, then "{".
        ahead, names = 0, [first.value]
        while self.peek(ahead).kind == "." and self.peek(ahead + 1).kind == "ident":
            names.append(self.peek(ahead + 1).value)
            ahead += 2
        if self.peek(ahead).kind == "{":
            self.at += ahead + 1
            return self.message(dot + ".".join(names), start)
        if first.value in RESERVED:
            raise _syntax(self.text, first.start, f"{first.value!r} is a reserved word")
        if self.peek().kind == "(":
            self.take()
            args = self.arguments(")")
            end = self.expect(")").end
            if first.value == "has" and len(args) == 1:
                if args[0].kind != "select":
                    raise _syntax(self.text, args[0].start, "has() takes a field: has(a.b)")
                return self.node("has", (args[0],), None, start, end)
            return self.node("call", tuple(args), dot + first.value, start, end)
        return self.node("ident", (), dot + first.value, start, first.end)

    def message(self, type_name: str, start: int) -> Node:
        fields: list[str] = []
        values: list[Node] = []
        if self.peek().kind == "," and self.peek(1).kind == "}":  # "A{,}", as the extension
            self.take()
        while self.peek().kind != "}":
            if self.peek().kind != "ident":
                raise self.unexpected("expected a field name")
            field = self.take()
            self.expect(":")
            fields.append(field.value)
            values.append(self.expr())
            if not self.accept(","):
                break
        end = self.expect("}").end
        return self.node("struct", tuple(values), (type_name, tuple(fields)), start, end)


def _too_deep() -> CelTooDeepError:
    return CelTooDeepError(
        f"the rule nests more than {MAX_DEPTH} levels deep (each operator of a chain such "
        "as a + b + c is a level, and so is each bracket, call and member access)"
    )


def parse(text: str) -> Node:
    """The expression's tree; CelSyntaxError or CelTooDeepError if it has none we accept."""
    try:
        return _Parser(text).parse()
    except RecursionError as exc:  # the nesting limit keeps far below it; never a crash
        raise _too_deep() from exc


def free_variables(tree: Node) -> set[str]:
    """The variables the expression reads from its context (not those a macro binds)."""
    found: set[str] = set()

    def visit(node: Node, bound: frozenset[str]) -> None:
        if node.kind == "ident":
            if node.value not in bound:
                found.add(node.value)
            return
        if node.kind == "comprehension":
            visit(node.args[0], bound)
            inner = bound | {node.value[1]}
            for body in node.args[1:]:
                visit(body, inner)
            return
        for arg in node.args:
            visit(arg, bound)

    visit(tree, frozenset())
    return found


# What the CEL runtime (common-expression-language 0.10) can call, by form and argument count;
# anything else compiles there but fails on every evaluation, so the rule would never match.
FUNCTIONS: dict[str, frozenset[int]] = {
    "size": frozenset({1}),
    "int": frozenset({1}),
    "uint": frozenset({1}),
    "double": frozenset({1}),
    "string": frozenset({1}),
    "bytes": frozenset({1}),
    "duration": frozenset({1}),
    "timestamp": frozenset({1}),
    "type": frozenset({1}),
    "dyn": frozenset({1}),
}
METHODS: dict[str, frozenset[int]] = {
    "size": frozenset({0}),
    "contains": frozenset({1}),
    "startsWith": frozenset({1}),
    "endsWith": frozenset({1}),
    "matches": frozenset({1}),
    **{
        name: frozenset({0})  # in UTC: the runtime has no time-zone overloads
        for name in (
            "getFullYear",
            "getMonth",
            "getDayOfYear",
            "getDayOfMonth",
            "getDate",
            "getDayOfWeek",
            "getHours",
            "getMinutes",
            "getSeconds",
            "getMilliseconds",
        )
    },
}


def unknown_function(tree: Node) -> str | None:
    """The first call the CEL runtime cannot make (a name it lacks, or the wrong number of
    arguments), described for ops; None when there is none."""
    for node in _walk(tree):
        if node.kind == "call":
            name, arity, known = str(node.value).lstrip("."), len(node.args), FUNCTIONS
        elif node.kind == "method":
            name, arity, known = str(node.value), len(node.args) - 1, METHODS
        else:
            continue
        allowed = known.get(name)
        if allowed is None and node.kind == "call" and name in METHODS:
            return f"{name}() is called on a value: x.{name}(...)"
        if allowed is None and node.kind == "method" and name in FUNCTIONS:
            return f"{name}() is called as a function: {name}(x)"
        if allowed is None:
            offered = ", ".join(sorted({*FUNCTIONS, *METHODS}))
            return f"unknown function {name}() (the CEL runtime has: {offered})"
        if arity not in allowed:
            counts = " or ".join(str(n) for n in sorted(allowed))
            return f"{name}() takes {counts} argument(s), not {arity}"
    return None


def constant_calls(tree: Node) -> list[Node]:
    """Calls and operations whose operands are all literals or ``now`` (``int(now)``, ``1/0``):
    the rule's text alone decides whether they can be made, so they are tried at check time."""

    def fixed(node: Node) -> bool:
        return node.kind == "literal" or (node.kind == "ident" and node.value == "now")

    return [
        node
        for node in _walk(tree)
        if node.kind in ("call", "method", "op") and node.args and all(map(fixed, node.args))
    ]


def literal_patterns(tree: Node) -> list[Node]:
    """``x.matches("...")`` calls: the pattern is known, whatever ``x`` is."""
    return [
        node
        for node in _walk(tree)
        if node.kind == "method"
        and node.value == "matches"
        and len(node.args) == 2
        and node.args[1].kind == "literal"
    ]


def _walk(tree: Node) -> list[Node]:
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(reversed(node.args))
    return found


def snippet(text: str, node: Node, limit: int = 60) -> str:
    """The source of a node, shortened for a message."""
    part = " ".join(text[node.start : node.end].split())
    return part if len(part) <= limit else part[: limit - 3] + "..."
