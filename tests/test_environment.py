"""The environment promises: one locked set of versions, `hnmine --version`, no packaging warning."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"


def _lock() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: '{line}' is not pinned with =="
            pins[_normal(name)] = version
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _make_extras() -> list[str]:
    match = re.search(r"^EXTRAS\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    assert match, "Makefile: no EXTRAS line"
    return match.group(1).split(",")


def test_every_requirement_make_setup_installs_is_pinned_in_the_lock():
    """Each dependency of pyproject.toml, and of every extra `make setup` installs, has one exact version in
    requirements.lock (a fresh machine gets those; a package missing from it would float)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(project["dependencies"])
    for extra in _make_extras():
        assert extra in project["optional-dependencies"], f"Makefile EXTRAS names '{extra}', which pyproject.toml lacks"
        wanted += project["optional-dependencies"][extra]
    pins = _lock()
    missing = [req for req in wanted if _normal(re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0]) not in pins]
    assert not missing, f"not in requirements.lock: {missing}"
    assert pins.get("torch", "").startswith("2.13.0")  # the CPU wheel the Makefile installs first (2.13.0+cpu)


def test_the_installed_versions_are_the_locked_ones():
    """In an environment made by `make setup`, hnmine's own requirements are installed at the locked versions."""
    try:
        requires = metadata.requires("hnmine") or []
    except metadata.PackageNotFoundError:
        pytest.skip("hnmine is not installed in this environment (make setup installs it)")
    pins = _lock()
    wrong = []
    for req in requires:
        if "extra ==" in req:
            continue
        name = _normal(re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0])
        installed = metadata.version(name)
        if pins.get(name) != installed:
            wrong.append(f"{name} {installed} (locked {pins.get(name)})")
    assert not wrong, f"installed versions differ from requirements.lock: {wrong}; run make setup"


def test_version_flag_prints_the_package_version():
    import hnmine

    out = subprocess.run([sys.executable, "-m", "hnmine", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"hnmine {hnmine.__version__}"
    assert out.stderr == ""


def test_the_license_is_an_spdx_expression():
    """A `license = {text = ...}` table is deprecated by setuptools and warns at every install."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert isinstance(project["license"], str)
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))
