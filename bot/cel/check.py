"""What a rule's tree tells before it runs: the variables it reads, the calls the runtime
cannot make, the calls its text alone decides."""

from __future__ import annotations

from collections.abc import Mapping

from bot.cel.parser import Node

# What a rule needs of the facts: per variable, the fields it reads (None: all of it).
Needs = Mapping[str, frozenset[str] | None]


def reads(tree: Node) -> Needs:
    """Per variable the expression reads from its context (not one a macro binds), the fields
    it reads of it: ``visitor.company`` reads ``company``; any other use (``size(visitor)``,
    ``visitor["x"]``, ``visitor.size()``, ``now``) reads the whole variable (None)."""
    found: dict[str, set[str] | None] = {}

    def visit(node: Node, bound: frozenset[str]) -> None:
        kind = node.kind
        if kind == "select":
            operand = node.args[0]
            if operand.kind == "ident" and operand.value not in bound:
                fields = found.setdefault(operand.value, set())
                if fields is not None:
                    fields.add(node.value)
                return
        elif kind == "ident":
            if node.value not in bound:
                found[node.value] = None
            return
        elif kind == "comprehension":
            visit(node.args[0], bound)
            inner = bound | {node.value[1]}
            for body in node.args[1:]:
                visit(body, inner)
            return
        for arg in node.args:
            visit(arg, bound)

    visit(tree, frozenset())
    return {name: None if f is None else frozenset(f) for name, f in found.items()}


def free_variables(tree: Node) -> set[str]:
    """The variables the expression reads from its context (not those a macro binds)."""
    return set(reads(tree))


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
