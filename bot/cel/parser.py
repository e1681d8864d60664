"""A CEL parser in Python, so a rule is known to be safe before the CEL extension sees it.

The ``cel`` extension evaluates a rule by recursion on its tree, and a long operator chain such
as ``1 + 1 + ... + 1`` is a tree one level deeper per operator: deep enough, it overflows the
C stack and the process dies. Its own parser refuses deep brackets, not long chains. This
parser builds the same tree and refuses it past ``MAX_DEPTH``; ``bot.cel.check`` tells from
the tree which variables a rule reads (a macro's iteration variable is bound, not unknown)
and ``bot.cel.cost`` what evaluating it may cost; ``bot.cel.fast_path`` finds the common
shapes in it.

The grammar is CEL's (https://github.com/google/cel-spec/blob/master/doc/langdef.md), with
the ``cel`` extension's reading where the two differ (a number may start with ``0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.cel.lexer import INT64, CelSyntaxError, Token, syntax_error, tokens

# Depth of the tree as CEL builds it: every operator, call, member access, index and literal
# nests one level, and so does each bracket the parser descends into. ``&&`` and ``||``
# chains are balanced by CEL, so n terms add only log2(n) levels. Real rules stay below 15;
# the extension's parser stops at 96 brackets, and its evaluator needs about 500 bytes of
# stack per level (it crashes near 20,000 levels on an 8 MiB stack, 2,000 on a 1 MiB one).
MAX_DEPTH = 32

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
RESERVED = frozenset(
    "as break const continue else for function if import let loop namespace package return "
    "var void while".split()
)


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


# ---- the tree ---------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokens(text)
        self.at = 0
        self.nesting = 0

    # Tokens.

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.at + ahead, len(self.tokens) - 1)]

    def take(self) -> Token:
        token = self.tokens[self.at]
        if token.kind != "eof":
            self.at += 1
        return token

    def accept(self, kind: str) -> bool:
        if self.peek().kind == kind:
            self.take()
            return True
        return False

    def expect(self, kind: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            raise self.unexpected(f"expected {kind!r}")
        return self.take()

    def unexpected(self, wanted: str) -> CelSyntaxError:
        token = self.peek()
        found = "the end of the rule"
        if token.kind != "eof":
            found = repr(self.text[token.start : token.end])
        return syntax_error(self.text, token.start, f"{wanted}, found {found}")

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
            raise syntax_error(
                self.text, variable.start, f"{name}(): the first argument must be a name"
            )
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
        if kind == "int" and token.value == INT64:
            raise syntax_error(self.text, token.start, "number 9223372036854775808 is out of range")
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
            raise syntax_error(self.text, first.start, f"{first.value!r} is a reserved word")
        if self.peek().kind == "(":
            self.take()
            args = self.arguments(")")
            end = self.expect(")").end
            if first.value == "has" and len(args) == 1:
                if args[0].kind != "select":
                    raise syntax_error(self.text, args[0].start, "has() takes a field: has(a.b)")
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
