"""The widget's files as the bot serves them: ES modules that parse, imports that stay in the one
flat folder the bot serves by name, and a stylesheet that targets only the widget's own elements."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need

WIDGET_DIR = Path(__file__).parents[2] / "adapters" / "directline" / "widget"
SCRIPTS = sorted(WIDGET_DIR.glob("*.js"))
IMPORT = re.compile(
    r"""^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]""",
    re.M,
)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_script_parses_as_a_module(script: Path, tmp_path: Path) -> None:
    node = shutil.which("node")
    need(node is not None, "node is not installed")
    assert node is not None
    # As .mjs: `node --check` on a .js file outside a "type": "module" package does not parse
    # module syntax on every Node version (Node 20 passes it unchecked).
    copy = tmp_path / f"{script.stem}.mjs"
    copy.write_text(script.read_text())
    result = subprocess.run(
        [node, "--check", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_imports_stay_in_the_served_folder() -> None:
    """The bot serves the folder's files by name (no subfolders): every import is ./<file>."""
    for script in SCRIPTS:
        for groups in IMPORT.findall(script.read_text()):
            target = next(g for g in groups if g)
            assert re.fullmatch(r"\./[\w.-]+\.js", target), f"{script.name} imports {target}"
            assert (WIDGET_DIR / target[2:]).is_file(), f"{script.name} imports {target}"


def test_the_widget_stylesheet_styles_only_the_widget() -> None:
    """No rule for the host page's elements (html, body, :root, *, bare tags) in widget.css."""
    css = re.sub(r"/\*.*?\*/", "", (WIDGET_DIR / "widget.css").read_text(), flags=re.S)
    selectors: list[str] = []
    for prelude in re.findall(r"([^{}]+)\{", css):
        prelude = prelude.strip()
        if prelude.startswith("@") or re.fullmatch(
            r"(from|to|\d+%)(\s*,\s*(from|to|\d+%))*", prelude
        ):
            continue
        selectors += [s.strip() for s in prelude.split(",")]
    assert selectors
    for selector in selectors:
        assert re.match(r"(\.|\[|:where\(\.cw\)|:host)", selector), selector
