"""Whatever a config file holds, reading it is quick and bounded, and the message names the cause."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.ops import config_file
from adapters.ops.config_file import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_file.parse_settings(text, "handoff.yaml")
    return caught.value.problems


def laughs(levels: int, under: str = "") -> str:
    """The "billion laughs": each level an anchored list of nine aliases of the one before."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels)]
    if under:
        lines.append(f"{under}: *l{levels - 1}")
    return "\n".join(lines) + "\n"


def nested(depth: int) -> str:
    return "teams:\n  note_prefixes: " + "[" * (depth - 2) + "x" + "]" * (depth - 2) + "\n"


# A value count in between: nine levels of aliases expand to 9**9 = 387 million values.
LIMITS = [
    (
        laughs(9),
        "handoff.yaml:6: l5: expands to more than 100,000 values (each use of an alias "
        "counts what it refers to)",
    ),
    (
        laughs(4, under="routes"),  # 9**4 = 6,561 values: within the limit, checked by the model
        "handoff.yaml:1: l0: unknown key",
    ),
    (
        "teams:\n  note_prefixes:\n" + "    - x\n" * MAX_VALUES,
        "handoff.yaml:3: teams.note_prefixes: expands to more than 100,000 values (each use "
        "of an alias counts what it refers to)",
    ),
    (nested(MAX_DEPTH), "handoff.yaml:2: teams.note_prefixes[0]: Input should be a valid string"),
    (
        nested(MAX_DEPTH + 1),
        "handoff.yaml:2: teams.note_prefixes[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]"
        "[0][0][0][0][0][0][0][0][0][0][0][0][0]: nested more than 32 levels deep",
    ),
    (
        "a:\n" + "".join("  " * n + f"k{n}:\n" for n in range(1, 100)),
        "handoff.yaml:33: a.k1.k2.k3.k4.k5.k6.k7.k8.k9.k10.k11.k12.k13.k14.k15.k16.k17.k18.k19."
        "k20.k21.k22.k23.k24.k25.k26.k27.k28.k29.k30.k31: nested more than 32 levels deep",
    ),
    ("a: &a [*a]\nroutes: *a\n", "handoff.yaml:1: a[0]: an alias refers to itself (*a)"),
    (
        "teams: &t {x: {y: [1, *t]}}\n",
        "handoff.yaml:1: teams.x.y[1]: an alias refers to itself (*t)",
    ),
    ("a: &x 1\nb: &x 2\n", "handoff.yaml:2: (yaml): found duplicate anchor 'x' (first at line 1)"),
    ("a: *nope\n", "handoff.yaml:1: (yaml): found undefined alias 'nope'"),
    ("bot:\n  name: 2026-02-30\n", "handoff.yaml:2: (yaml): day is out of range for month"),
    (
        "widget:\n  max_message_chars: " + "9" * 5000 + "\n",
        "handoff.yaml:2: (yaml): Exceeds the limit (4300 digits) for integer string conversion",
    ),
    ("x" * (MAX_FILE_BYTES + 1), "handoff.yaml:1: (file): 1,024 KiB, more than the 1,024 KiB"),
    ("é" * (MAX_FILE_BYTES // 2 + 1), "handoff.yaml:1: (file): 1,024 KiB, more than the 1,024 KiB"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    LIMITS,
    ids=[
        "alias-bomb",
        "aliases-within-the-limit",
        "too-many-values",
        "deepest-allowed",
        "too-deep-flow",
        "too-deep-block",
        "self-alias",
        "self-alias-deeper",
        "duplicate-anchor",
        "undefined-alias",
        "impossible-date",
        "huge-integer",
        "too-large",
        "too-large-in-utf8",
    ],
)
def test_limits_name_line_key_and_cause(text: str, expected: str) -> None:
    assert problems(text)[0].startswith(expected)


def test_an_alias_bomb_is_refused_in_well_under_a_second() -> None:
    started = time.perf_counter()
    assert "expands to more than" in problems(laughs(12, under="routes"))[0]  # 9**12 values
    assert time.perf_counter() - started < 0.5


def test_deep_nesting_is_not_mistaken_for_an_alias() -> None:
    """Deep nesting used to end in a RecursionError, reported as "an alias refers to itself"."""
    found = problems("a: " + "[" * 5000 + "]" * 5000 + "\n")
    assert found == [f"handoff.yaml:1: a{'[0]' * 31}: nested more than 32 levels deep"]


def test_a_file_too_large_is_not_read_whole(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as file:
        file.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of zero bytes
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        load_settings(big)
    assert caught.value.problems == [
        f"{big}:1: (file): 65,536 KiB, more than the 1,024 KiB a config file may be"
    ]
    assert time.perf_counter() - started < 0.5


def write_config(tmp_path: Path, rule: str, key: str = "trigger") -> Path:
    path = tmp_path / "handoff.yaml"
    path.write_text(
        "routes:\n"
        "  - id: vip\n"
        "    channel: '19:vip@thread.tacv2'\n"
        f"    {key}: '{rule}'\n"
        "  - id: support\n"
        "    channel: '19:support@thread.tacv2'\n"
    )
    return path


CHECKED = [
    (
        "+".join(["1"] * 20_000) + " > 0",  # ran through the extension, it crashes the process
        ":4: routes[0].trigger: CEL: the rule is 40,003 characters long, more than the 4,096",
    ),
    (
        "+".join(["1"] * 1_000) + " > 0",
        ":4: routes[0].trigger: CEL: the rule nests more than 32 levels deep",
    ),
    (
        "context.a.map(x, context.a).map(y, y.map(z, z)).size() > 0",
        ":4: routes[0].trigger: CEL: too expensive to evaluate: `context.a.map(x, context.a)`",
    ),
    ('context.tags.exists(t, t.startsWith("vip"))', None),
]


@pytest.mark.parametrize(("rule", "expected"), CHECKED, ids=["long", "deep", "costly", "fine"])
def test_check_refuses_unsafe_rules_without_crashing(
    tmp_path: Path, rule: str, expected: str | None
) -> None:
    config = write_config(tmp_path, rule)
    run = subprocess.run(
        [sys.executable, "app.py", "check", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == (0 if expected is None else 1), run.stderr  # never a signal
    assert "Traceback" not in run.stderr
    if expected is None:
        assert run.stdout == f"{config}: ok (2 route(s))\n"
    else:
        assert run.stdout.startswith(f"{config}{expected}")
