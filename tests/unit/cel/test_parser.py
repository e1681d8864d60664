"""The Python CEL parser reads rules as the CEL extension does, and bounds their depth."""

from __future__ import annotations

import random

import cel
import pytest

from bot.cel.check import free_variables
from bot.cel.lexer import CelSyntaxError
from bot.cel.parser import MAX_DEPTH, CelTooDeepError, parse

# Both accept, or both refuse: literals, operators, precedence, macros and the odd corners.
CORPUS = [
    'context.domain == "FINANCE_DOMAIN" || conversation.text.contains("refund")',
    'has(context.seats) && context.seats > 100 && "question" in conversation.intents',
    "a ? b : c ? d : e",
    "a ? b ? c : d : e",
    "(1 ? 2 : 3) ? 4 : 5",
    "a || b ? c : d",
    "1 < 2 < 3",
    "a in b in c",
    "!a.b",
    "-a.b",
    "!-1",
    "-!1",
    "--a",
    "- -1",
    "!!!!!!true",
    "-9223372036854775808",
    "9223372036854775808",
    "--9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615u",
    "18446744073709551616u",
    "1.7976931348623157e309",
    "0x1F",
    "0XFF",
    "0xffu",
    "1U",
    "01",
    "1.5u",
    "1e3",
    "1.e3",
    "1.",
    ".5e-3",
    "1..2",
    '"\\x41\\101\\u00e9\\U0001F600\\a\\b\\f\\n\\r\\t\\v\\\\\\"\\\'\\`\\?"',
    '"\\q"',
    '"\\x4"',
    '"\\u004"',
    '"\\uD800"',
    '"\\U00110000"',
    '"\\400"',
    'b"\\xff\\377"',
    'b"\\u0041"',
    'b"é"',
    'r"\\d+"',
    "R'a'",
    "br'a'",
    "BR'a'",
    "rb'a'",
    '"""a\nb"""',
    "'''a''b'''",
    '"a\nb"',
    '"abc',
    "[1, 2,]",
    "[,]",
    "{,}",
    "{'a': 1,}",
    "size(1,)",
    "size()",
    "f(,)",
    "A{}",
    "A{a: 1, b: 2,}",
    "a.B{c: 1}",
    ".A{}",
    "A{1: 2}",
    "(a){}",
    "a{}.b",
    "a.if",
    "if + 1",
    "a.in",
    "a.true",
    "a.null",
    "let()",
    "a.let()",
    "a.b.c(1)(2)",
    "a[1][2].b",
    "a[]",
    "a.",
    "a.1",
    "a // comment",
    "// only a comment",
    "/* c */ a",
    "a & b",
    "a = b",
    "a <> b",
    "a?.b",
    "a.?b",
    "m[?'a']",
    "[?a]",
    "é",
    "@a",
    "x.exists(y, y > 1)",
    "x.exists(y)",
    "x.exists(y, z, w)",
    "x.exists(1, true)",
    "x.exists(a.b, true)",
    "x.map(y, y > 1, y * 2)",
    "x.map(y, y, z, w)",
    "x.filter(y, y, z)",
    "x.exists_one(y, y)",
    "x.exists(y, )",
    "x.map(y,)",
    "has(a.b)",
    "has(a)",
    "has(a[0])",
    "has(a.b, c)",
    "a.has(b)",
    ".has(a.b)",
    "has",
    "",
    "   ",
    "1 1",
]


def accepted(text: str) -> tuple[bool, bool]:
    """Whether the extension, and whether our parser, accept ``text``."""
    try:
        cel.compile(text)
        extension = True
    except (ValueError, RuntimeError):
        extension = False
    try:
        parse(text)
        ours = True
    except CelSyntaxError:
        ours = False
    return extension, ours


@pytest.mark.parametrize("text", CORPUS)
def test_accepts_what_the_extension_accepts(text: str) -> None:
    extension, ours = accepted(text)
    assert ours is extension


def random_expression(rng: random.Random, depth: int = 0) -> str:
    atoms = ["a", "x", "1", "2u", "1.5", '"s"', "'t'", 'r"\\d"', 'b"b"', "true", "null", "[]"]
    if depth > 4 or rng.random() < 0.3:
        return rng.choice(atoms)

    def sub() -> str:
        return random_expression(rng, depth + 1)

    op = rng.choice(["+", "-", "*", "%", "==", "<", "in", "&&", "||"])
    shapes = [
        lambda: f"{sub()} {op} {sub()}",
        lambda: f"{rng.choice('!-')}{sub()}",
        lambda: f"({sub()})",
        lambda: f"[{sub()}, {sub()}]",
        lambda: f"{{{sub()}: {sub()}}}",
        lambda: f"{sub()}.{rng.choice(['f', 'exists', 'map', 'filter'])}(v, {sub()})",
        lambda: f"{sub()}[{sub()}]",
        lambda: f"{sub()} ? {sub()} : {sub()}",
        lambda: f"size({sub()})",
        lambda: f"A{{f: {sub()}}}",
    ]
    return rng.choice(shapes)()


def mangle(rng: random.Random, text: str) -> str:
    chars = list(text)
    position = rng.randrange(len(chars) + 1)
    chars.insert(position, rng.choice(list("()[]{}.,:?!-+<=&|\"' a1") + ["in", "x.map("]))
    return "".join(chars)


def test_agrees_with_the_extension_on_random_rules() -> None:
    rng = random.Random(12)
    for _ in range(1500):
        text = random_expression(rng)
        if rng.random() < 0.5:
            text = mangle(rng, text)
        extension, ours = accepted(text)
        assert ours is extension, text


DEPTHS = [
    ("+".join(["1"] * MAX_DEPTH), True),  # a chain of 31 operators: 32 levels
    ("+".join(["1"] * (MAX_DEPTH + 1)), False),
    ("-".join(["x"] * 20_000), False),  # crashes the extension's evaluator
    ("a.b" + ".c" * (MAX_DEPTH - 2), True),
    ("a.b" + ".c" * (MAX_DEPTH - 1), False),
    ("a" + "[0]" * (MAX_DEPTH - 1), True),
    ("a" + "[0]" * MAX_DEPTH, False),
    ("(" * (MAX_DEPTH - 1) + "1" + ")" * (MAX_DEPTH - 1), True),
    ("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1), False),
    ("(" * 5000, False),  # never a RecursionError
    ("size(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH, False),
    ("!" * 20_000 + "true", False),
    (" || ".join(["a == 1"] * 10_000), True),  # CEL balances && and || chains
    ("x.map(a, " * 12 + "a" + ")" * 12, True),
    ("x.map(a, " * 40 + "a" + ")" * 40, False),
]


@pytest.mark.parametrize(("text", "accepted"), DEPTHS)
def test_depth_is_bounded(text: str, accepted: bool) -> None:
    if accepted:
        assert parse(text).depth <= MAX_DEPTH
    else:
        with pytest.raises(CelTooDeepError, match=f"more than {MAX_DEPTH} levels deep"):
            parse(text)


VARIABLES = [
    ("context.tags.exists(t, t.startsWith('vip'))", {"context"}),
    ("context.a.map(x, x.b).filter(y, y > 1)", {"context"}),
    ("[1].exists(x, x > 0) && x", {"x"}),  # outside the macro, x is unbound
    ("x.exists(x, x)", {"x"}),  # the range is outside the macro's scope
    ("context.a.all(context, context > 1)", {"context"}),  # shadows the variable
    ("a.exists(x, b.exists(y, x == y && z))", {"a", "b", "z"}),
    ("a.map(x, x > 1, x * y)", {"a", "y"}),
    ("a.exists(b)", {"a", "b"}),  # not a macro: a method with a variable
    ("a.exists(x, y, x)", {"a", "x", "y"}),
    ("has(a.b.c)", {"a"}),
    (".a.b", {".a"}),
    ("A.B{c: d}", {"d"}),
    ("type(1) == int", {"int"}),
]


@pytest.mark.parametrize(("text", "expected"), VARIABLES)
def test_macros_bind_their_variable(text: str, expected: set[str]) -> None:
    assert free_variables(parse(text)) == expected


LITERALS = [
    ('"\\x41\\101\\u00e9\\U0001F600"', "AAé\U0001f600"),
    ('b"\\xff\\101é"', b"\xffA\xc3\xa9"),
    ("r'\\d+'", "\\d+"),
    ("'''it's'''", "it's"),
    ("-9223372036854775808", -(2**63)),
    ("0x1Fu", 31),
    (".5e1", 5.0),
]


@pytest.mark.parametrize(("text", "value"), LITERALS)
def test_literals_read_as_cel_reads_them(text: str, value: object) -> None:
    tree = parse(text)
    assert tree.kind == "literal" and tree.value == value
    assert cel.compile(text).execute() == value
