"""Build the Teams app package: fill manifest.template.json, check it, zip it with the icons.

    python manifest/build.py --app-id GUID --domain bot.example.com [--version 1.0.0]
        [--name NAME] [--company NAME] [--website URL] [--out dist/handoff-teams-app.zip]

The zip holds exactly manifest.json, color.png and outline.png at its root, which is what
Teams "Upload a custom app" and the Developer Portal import expect. Bad input exits with
code 2 and one line that names the option; nothing is written then. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "manifest.template.json"
ICONS = ("color.png", "outline.png")
DEFAULT_OUT = Path("dist") / "handoff-teams-app.zip"
PROG = "build.py"

GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
NIL_GUID = "00000000-0000-0000-0000-000000000000"
SEMVER = re.compile(r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)")
HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")
# A fixed timestamp: the same inputs give a byte-identical package.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)

# Limits from the Teams manifest schema (v1.30), checked here so the message names the option.
MAX_NAME = 30  # name.short
MAX_COMPANY = 32  # developer.name
MAX_URL = 2048


class InputError(Exception):
    """Bad command-line input: reported on one line, exit code 2."""


class BuildError(Exception):
    """The package could not be built (missing template or icon, unwritable output): exit 1."""


def check_guid(value: str, option: str) -> str:
    """A GUID in the 8-4-4-4-12 form, lower-cased."""
    text = value.strip()
    if not GUID.fullmatch(text):
        raise InputError(
            f"{option} must be a GUID like 0a1b2c3d-4e5f-6789-abcd-ef0123456789 (the bot's "
            f"Microsoft App ID from its Azure Bot / Entra app registration), got {value!r}"
        )
    if text == NIL_GUID:
        raise InputError(f"{option} is the all-zero GUID, a placeholder rather than an app id")
    return text.lower()


def check_domain(value: str) -> str:
    """A bare host name such as bot.example.com: no scheme, port, path or wildcard."""
    text = value.strip().lower()
    hint = "--domain takes a bare host name like bot.example.com"
    if not text:
        raise InputError(f"{hint}, got an empty value")
    if "://" in text:
        raise InputError(f"{hint}, not a URL: drop the scheme and any path from {value!r}")
    for char, what in (("/", "a path"), (":", "a port"), ("*", "a wildcard"), ("@", "a user")):
        if char in text:
            raise InputError(f"{hint}, without {what}: {value!r}")
    if any(c.isspace() for c in text):
        raise InputError(f"{hint}, without spaces: {value!r}")
    text = text.removesuffix(".")
    labels = text.split(".")
    if len(text) > 253 or len(labels) < 2:
        raise InputError(f"{hint} (a fully qualified name with a dot), got {value!r}")
    bad = [label for label in labels if not HOST_LABEL.fullmatch(label)]
    if bad:
        raise InputError(
            f"{hint}: {bad[0]!r} in {value!r} is not a valid label "
            "(letters, digits and inner hyphens, at most 63 characters)"
        )
    if labels[-1].isdigit():
        raise InputError(f"{hint}, not an IP address: {value!r}")
    return text


def check_version(value: str) -> str:
    """A semantic version MAJOR.MINOR.PATCH, as Teams requires for the app version."""
    text = value.strip()
    if not SEMVER.fullmatch(text):
        raise InputError(f"--version must look like 1.0.0 (MAJOR.MINOR.PATCH), got {value!r}")
    return text


def check_text(value: str, option: str, limit: int) -> str:
    """A non-empty single-line display text of at most `limit` characters."""
    text = value.strip()
    if not text:
        raise InputError(f"{option} must not be empty")
    if len(text) > limit:
        raise InputError(f"{option} is {len(text)} characters; Teams allows at most {limit}")
    if any(ord(c) < 32 for c in text) or "{{" in text or "}}" in text:
        raise InputError(f"{option} must be one line of plain text without '{{{{' or '}}}}'")
    return text


def check_url(value: str, option: str) -> str:
    """An absolute https URL (Teams shows these links to people installing the app)."""
    text = value.strip()
    if not re.fullmatch(r"https://[^\s/?#]+(?:[/?#]\S*)?", text, flags=re.IGNORECASE):
        raise InputError(f"{option} must be an https:// URL, got {value!r}")
    if len(text) > MAX_URL:
        raise InputError(f"{option} is longer than {MAX_URL} characters")
    if "{{" in text or "}}" in text:
        raise InputError(f"{option} must not contain '{{{{' or '}}}}'")
    return text


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Build the Teams app package (manifest.json + icons) for the handoff bot.",
    )
    p.add_argument("--app-id", required=True, help="the bot's Microsoft App ID (a GUID)")
    p.add_argument("--domain", required=True, help="the bot's public host, e.g. bot.example.com")
    p.add_argument("--version", default="1.0.0", help="app version, MAJOR.MINOR.PATCH (1.0.0)")
    p.add_argument("--name", default="Handoff", help="app name shown in Teams (Handoff)")
    p.add_argument("--company", help="developer name shown in Teams (default: --name)")
    p.add_argument("--website", help="developer website (default: https://DOMAIN)")
    p.add_argument("--privacy-url", help="privacy statement (default: WEBSITE/privacy)")
    p.add_argument("--terms-url", help="terms of use (default: WEBSITE/terms)")
    p.add_argument(
        "--entra-app-id",
        help="Entra app registration that holds the RSC grant (webApplicationInfo.id); "
        "default: --app-id. Set it when the bot runs as a user-assigned managed identity.",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output zip ({DEFAULT_OUT})")
    return p


def values_from(args: argparse.Namespace) -> dict[str, str]:
    """Check every option and return the template's placeholder values."""
    app_id = check_guid(args.app_id, "--app-id")
    domain = check_domain(args.domain)
    name = check_text(args.name, "--name", MAX_NAME)
    website = check_url(args.website or f"https://{domain}", "--website").rstrip("/")
    return {
        "APP_ID": app_id,
        "ENTRA_APP_ID": (
            check_guid(args.entra_app_id, "--entra-app-id") if args.entra_app_id else app_id
        ),
        "DOMAIN": domain,
        "VERSION": check_version(args.version),
        "NAME": name,
        "COMPANY": check_text(args.company or name, "--company", MAX_COMPANY),
        "WEBSITE": website,
        "PRIVACY_URL": check_url(args.privacy_url or f"{website}/privacy", "--privacy-url"),
        "TERMS_URL": check_url(args.terms_url or f"{website}/terms", "--terms-url"),
    }


def fill(node: Any, values: Mapping[str, str]) -> Any:
    """Replace every {{NAME}} in the template's strings; an unknown name is a template bug."""
    if isinstance(node, dict):
        return {fill(k, values): fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [fill(item, values) for item in node]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in values:
                raise BuildError(f"{TEMPLATE.name} uses {{{{{key}}}}}, which {PROG} does not fill")
            return values[key]

        return PLACEHOLDER.sub(substitute, node)
    return node


def check_manifest(manifest: Mapping[str, Any], text: str) -> None:
    """Checks the schema cannot express: everything filled, every icon present."""
    if "{{" in text or "}}" in text:
        raise BuildError("the filled manifest still holds a '{{' placeholder")
    limits = (("name", "full", 100), ("description", "short", 80), ("description", "full", 4000))
    for section, key, limit in limits:
        length = len(manifest[section][key])
        if length > limit:
            raise InputError(f"{section}.{key} would be {length} characters (at most {limit})")
    for icon in manifest["icons"].values():
        if icon not in ICONS:
            raise BuildError(f"the manifest names icon {icon!r}, which is not packaged")


def build(values: Mapping[str, str], out: Path) -> dict[str, Any]:
    """Fill the template and write the zip; return the manifest written."""
    try:
        template = json.loads(TEMPLATE.read_text(encoding="utf-8"))
        icons = {name: (HERE / name).read_bytes() for name in ICONS}
    except OSError as exc:
        raise BuildError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise BuildError(f"{TEMPLATE} is not valid JSON: {exc}") from exc
    manifest: dict[str, Any] = fill(template, values)
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    check_manifest(manifest, text)

    if out.is_dir():
        raise InputError(f"--out {out} is a directory; give a file name such as {DEFAULT_OUT}")
    partial = out.with_name(out.name + ".partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in (("manifest.json", text.encode("utf-8")), *icons.items()):
                info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise BuildError(f"cannot write {out}: {exc.strerror or exc}") from exc
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parser().parse_args(argv)  # argparse itself exits 2 on unknown or missing options
    try:
        manifest = build(values_from(args), args.out)
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BuildError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.out} (manifest {manifest['manifestVersion']}, app {manifest['id']}, "
        f"domain {manifest['validDomains'][0]}, version {manifest['version']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
