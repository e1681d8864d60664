"""bot/ stays pure: no edge libraries, no wall clock; dependencies point app -> adapters -> bot."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EDGE = {
    "aiohttp",
    "botbuilder",
    "botframework",
    "msal",
    "sqlite3",
    "aiosqlite",
    "redis",
    "yaml",
    "adapters",
    "app",
    "requests",
}
CLOCK = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("time", "time"),
    ("date", "today"),
    ("time", "monotonic"),
}


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def test_bot_imports_no_edge_library() -> None:
    leaks = []
    for path in modules("bot"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            leaks += [f"{path.name}: {n}" for n in names if n.split(".")[0] in EDGE]
    assert leaks == []


def test_bot_never_reads_the_clock() -> None:
    reads = []
    for path in modules("bot"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                target = node.func.value
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
                if (name, node.func.attr) in CLOCK:
                    reads.append(f"{path.name}:{node.lineno}")
    assert reads == []


def test_botbuilder_only_under_adapters() -> None:
    for path in [ROOT / "app.py", *modules("bot")]:
        assert "botbuilder" not in path.read_text(), path
