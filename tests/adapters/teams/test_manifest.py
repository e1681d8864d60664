"""The Teams app package: ``manifest/build.py`` output checked against Microsoft's own schema.

The package is built with the real command line into a temporary folder, unzipped, and its
manifest.json validated by ``manifest/validate.mjs`` against the schema file that npm
``@microsoft/app-manifest`` ships (``build/json-schemas/teams/v<manifestVersion>/``), offline.
Without Node or ``npm ci`` in ``tests/e2e/node`` the schema tests skip, except under
``CI=true``, where that is a failure. The icons are decoded with the standard library.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
MANIFEST_DIR = ROOT / "manifest"
BUILD = MANIFEST_DIR / "build.py"
VALIDATE = MANIFEST_DIR / "validate.mjs"
NODE_DIR = ROOT / "tests" / "e2e" / "node"
SCHEMAS = NODE_DIR / "node_modules" / "@microsoft" / "app-manifest" / "build" / "json-schemas"
IN_CI = os.environ.get("CI") == "true"

APP_ID = "0a1b2c3d-4e5f-6789-abcd-ef0123456789"
RSC_APP_ID = "99999999-8888-4777-a666-555555555555"
DOMAIN = "bot.example.com"


# --- building -------------------------------------------------------------------------------


# What a typical company passes besides its app id.
CONTOSO = (
    "--domain",
    DOMAIN,
    "--version",
    "2.3.4",
    "--name",
    "Contoso Handoff",
    "--company",
    "Contoso Ltd",
)


def run_build(*args: str, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BUILD), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


@dataclass(frozen=True)
class Package:
    path: Path
    names: list[str]
    manifest: dict[str, Any]
    manifest_text: str
    files: dict[str, bytes]


def open_package(path: Path) -> Package:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        files = {name: zf.read(name) for name in names}
    text = files["manifest.json"].decode("utf-8")
    return Package(path, names, json.loads(text), text, files)


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Package:
    out = tmp_path_factory.mktemp("pkg") / "dist" / "handoff-teams-app.zip"
    result = run_build(*CONTOSO, "--app-id", APP_ID.upper(), out=out)
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    return open_package(out)


# --- the official schema check --------------------------------------------------------------


def require_node() -> str:
    """The node binary; skip (or, under CI=true, fail) when the tooling is not installed."""
    node = shutil.which("node")
    problem = ""
    if node is None:
        problem = "node is not on PATH"
    elif not SCHEMAS.is_dir() or not (NODE_DIR / "node_modules" / "ajv-draft-04").is_dir():
        problem = f"{NODE_DIR}/node_modules is missing (run `npm ci` in {NODE_DIR})"
    if problem:
        if IN_CI:
            pytest.fail(
                f"CI=true but {problem}: the official Teams manifest schema check cannot run"
            )
        pytest.skip(problem)
    assert node is not None
    return node


def validate(manifest: dict[str, Any], tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    """Run the official-schema check: (exit code, report, stderr)."""
    node = require_node()
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    result = subprocess.run(
        [node, str(VALIDATE), str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.returncode, report, result.stderr


def test_manifest_passes_the_official_schema(package: Package, tmp_path: Path) -> None:
    code, report, stderr = validate(package.manifest, tmp_path)
    assert code == 0, f"{report.get('errors')}\n{stderr}"
    assert report["errors"] == []
    version = package.manifest["manifestVersion"]
    expected = SCHEMAS / "teams" / f"v{version}" / "MicrosoftTeams.schema.json"
    assert Path(report["schema"]) == expected


def test_manifest_uses_a_current_schema_version_that_the_package_ships(package: Package) -> None:
    require_node()
    version = package.manifest["manifestVersion"]
    major, minor = (int(part) for part in version.split("."))
    assert (major, minor) >= (1, 17)
    assert package.manifest["$schema"] == (
        f"https://developer.microsoft.com/json-schemas/teams/v{version}/MicrosoftTeams.schema.json"
    )
    # The newest numbered schema in the pinned package, so the template does not fall behind
    # silently when the package is bumped.
    shipped = [
        tuple(int(p) for p in d.name[1:].split("."))
        for d in (SCHEMAS / "teams").iterdir()
        if d.name[1:].replace(".", "").isdigit()
    ]
    assert (major, minor) == max(shipped)


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        pytest.param(
            lambda m: m.pop("developer"),
            "must have required property 'developer'",
            id="missing-developer",
        ),
        pytest.param(
            lambda m: m["bots"][0].update(scopes=["channel"]),
            "must be equal to one of the allowed values",
            id="unknown-bot-scope",
        ),
        pytest.param(
            lambda m: m.update(accentColor="blue"),
            "/accentColor must match pattern",
            id="accent-not-hex",
        ),
        pytest.param(
            lambda m: m["authorization"]["permissions"].update(rsc=[]),
            "must NOT have additional properties",
            id="unknown-key",
        ),
    ],
)
def test_schema_check_rejects_a_broken_manifest(
    package: Package, tmp_path: Path, break_it: Any, expected: str
) -> None:
    broken = json.loads(package.manifest_text)
    break_it(broken)
    code, report, stderr = validate(broken, tmp_path)
    assert code == 1, stderr
    assert any(expected in error for error in report["errors"]), report["errors"]


def test_schema_check_reports_unreadable_input(tmp_path: Path) -> None:
    node = require_node()
    path = tmp_path / "manifest.json"
    path.write_text("{not json", encoding="utf-8")
    result = subprocess.run(
        [node, str(VALIDATE), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "cannot read the manifest" in result.stderr


# --- what the handoff bot needs from the manifest -------------------------------------------


def test_package_holds_exactly_the_manifest_and_icons_at_the_root(package: Package) -> None:
    assert sorted(package.names) == ["color.png", "manifest.json", "outline.png"]
    icons = package.manifest["icons"]
    assert set(icons.values()) == {"color.png", "outline.png"}
    for name in ("color.png", "outline.png"):
        assert package.files[name] == (MANIFEST_DIR / name).read_bytes()


def test_every_placeholder_is_filled(package: Package) -> None:
    assert "{{" not in package.manifest_text
    assert "}}" not in package.manifest_text
    manifest = package.manifest
    assert manifest["id"] == APP_ID  # normalised to lower case
    assert manifest["version"] == "2.3.4"
    assert manifest["name"]["short"] == "Contoso Handoff"
    assert manifest["developer"] == {
        "name": "Contoso Ltd",
        "websiteUrl": f"https://{DOMAIN}",
        "privacyUrl": f"https://{DOMAIN}/privacy",
        "termsOfUseUrl": f"https://{DOMAIN}/terms",
    }
    assert manifest["validDomains"] == [DOMAIN]
    assert len(manifest["description"]["short"]) <= 80
    assert len(manifest["description"]["full"]) <= 4000


def test_bot_is_a_conversational_team_bot_with_a_setup_command(package: Package) -> None:
    (bot,) = package.manifest["bots"]
    assert bot["botId"] == APP_ID
    assert "team" in bot["scopes"]
    assert "personal" in bot["scopes"]
    assert bot["supportsFiles"] is False
    assert bot["isNotificationOnly"] is False
    setup_scopes = {
        scope
        for command_list in bot["commandLists"]
        for command in command_list["commands"]
        if command["title"] == "setup"
        for scope in command_list["scopes"]
    }
    assert {"team", "personal"} <= setup_scopes


def test_rsc_lets_the_bot_read_thread_replies_without_a_mention(package: Package) -> None:
    permissions = package.manifest["authorization"]["permissions"]["resourceSpecific"]
    assert {"name": "ChannelMessage.Read.Group", "type": "Application"} in permissions
    # RSC is granted to the Entra app named here; the resource must be present (any value).
    info = package.manifest["webApplicationInfo"]
    assert info["id"] == APP_ID
    assert info["resource"] == f"api://botid-{APP_ID}"


def test_rsc_app_can_differ_from_the_bot_for_managed_identity_bots(tmp_path: Path) -> None:
    out = tmp_path / "app.zip"
    result = run_build(
        "--app-id",
        APP_ID,
        "--domain",
        DOMAIN,
        "--entra-app-id",
        RSC_APP_ID,
        "--website",
        "https://www.example.com/",
        out=out,
    )
    assert result.returncode == 0, result.stderr
    manifest = open_package(out).manifest
    assert manifest["bots"][0]["botId"] == APP_ID
    assert manifest["webApplicationInfo"]["id"] == RSC_APP_ID
    assert manifest["developer"]["privacyUrl"] == "https://www.example.com/privacy"


def test_same_inputs_give_the_same_package(package: Package, tmp_path: Path) -> None:
    out = tmp_path / "again.zip"
    result = run_build(*CONTOSO, "--app-id", APP_ID, out=out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == package.path.read_bytes()


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app-id", "not-a-guid", "--domain", DOMAIN], "--app-id must be a GUID"),
        (["--app-id", APP_ID[:-1], "--domain", DOMAIN], "--app-id must be a GUID"),
        (["--app-id", "00000000-0000-0000-0000-000000000000", "--domain", DOMAIN], "all-zero"),
        (["--app-id", APP_ID, "--domain", "https://bot.example.com"], "not a URL"),
        (["--app-id", APP_ID, "--domain", "bot.example.com/api/messages"], "without a path"),
        (["--app-id", APP_ID, "--domain", "bot.example.com:3978"], "without a port"),
        (["--app-id", APP_ID, "--domain", "*.example.com"], "without a wildcard"),
        (["--app-id", APP_ID, "--domain", "bot example.com"], "without spaces"),
        (["--app-id", APP_ID, "--domain", "localhost"], "fully qualified"),
        (["--app-id", APP_ID, "--domain", "bot_1.example.com"], "not a valid label"),
        (["--app-id", APP_ID, "--domain", "192.168.1.10"], "not an IP address"),
        (["--app-id", APP_ID, "--domain", ""], "empty"),
        (["--app-id", APP_ID, "--domain", DOMAIN, "--version", "1.0"], "--version"),
        (["--app-id", APP_ID, "--domain", DOMAIN, "--name", "x" * 31], "--name is 31 characters"),
        (["--app-id", APP_ID, "--domain", DOMAIN, "--company", "{{COMPANY}}"], "--company"),
        (["--app-id", APP_ID, "--domain", DOMAIN, "--website", "http://example.com"], "https://"),
        (["--app-id", APP_ID, "--domain", DOMAIN, "--entra-app-id", "x"], "--entra-app-id"),
        (["--domain", DOMAIN], "required: --app-id"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "app.zip"
    result = run_build(*args, out=out)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("build.py: error:")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_output_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    result = run_build("--app-id", APP_ID, "--domain", DOMAIN, out=tmp_path)
    assert result.returncode == 2
    assert "is a directory" in result.stderr
    assert "Traceback" not in result.stderr


# --- icons, decoded with the standard library -----------------------------------------------


@dataclass(frozen=True)
class Png:
    width: int
    height: int
    color_type: int
    pixels: list[tuple[int, ...]]  # RGB or RGBA tuples, row by row


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(data: bytes) -> Png:
    """Decode an 8-bit, non-interlaced truecolor PNG (color type 2 or 6), checking every CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and color_type in (2, 6) and interlace == 0, (depth, color_type, interlace)
    bpp = 4 if color_type == 6 else 3
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * bpp
    assert len(raw) == height * (stride + 1)
    previous = bytearray(stride)
    pixels: list[tuple[int, ...]] = []
    for y in range(height):
        line = raw[y * (stride + 1) : (y + 1) * (stride + 1)]
        kind, row = line[0], bytearray(line[1:])
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b = previous[i]
            c = previous[i - bpp] if i >= bpp else 0
            predictor = (0, a, b, (a + b) // 2, _paeth(a, b, c))[kind]
            row[i] = (row[i] + predictor) & 0xFF
        pixels.extend(tuple(row[x : x + bpp]) for x in range(0, stride, bpp))
        previous = row
    return Png(width, height, color_type, pixels)


def test_color_icon_is_192_full_color_on_a_solid_background() -> None:
    png = read_png((MANIFEST_DIR / "color.png").read_bytes())
    assert (png.width, png.height) == (192, 192)
    rgb = [p[:3] for p in png.pixels]
    if png.color_type == 6:
        assert all(p[3] == 255 for p in png.pixels), "the color icon must be fully opaque"
    corners = {rgb[0], rgb[191], rgb[191 * 192], rgb[-1]}
    assert len(corners) == 1, "the background must be one solid color"
    (background,) = corners
    assert background != (255, 255, 255)
    assert sum(1 for p in rgb if p == background) > 192 * 192 // 3
    assert len(set(rgb)) > 3, "a full-color icon, not a flat square"


def test_outline_icon_is_32_white_on_transparent() -> None:
    png = read_png((MANIFEST_DIR / "outline.png").read_bytes())
    assert (png.width, png.height) == (32, 32)
    assert png.color_type == 6, "the outline icon needs an alpha channel (RGBA)"
    visible = [p for p in png.pixels if p[3] > 0]
    assert all(p[:3] == (255, 255, 255) for p in visible), "only white and transparent pixels"
    transparent = sum(1 for p in png.pixels if p[3] == 0)
    opaque = sum(1 for p in png.pixels if p[3] == 255)
    assert transparent > 32 * 32 // 3, "the background must be transparent"
    assert opaque > 32, "the outline must actually be drawn"
