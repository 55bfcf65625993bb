"""What the machine offers the tests: CI strictness, Python interpreters, free ports."""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def running_under_ci() -> bool:
    """Tell whether CI=true, where a missing prerequisite is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def need(condition: bool, reason: str) -> None:
    """Skip the test when a prerequisite is missing; fail instead under CI=true."""
    if condition:
        return
    if running_under_ci():
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_tool(name: str) -> str:
    """A command installed in the template's venv next to this interpreter (cruft, mypy...)."""
    path = Path(sys.executable).with_name(name)
    assert path.exists(), f"{name} is not in the template's venv: uv sync --locked"
    return str(path)


def uv_executable() -> str | None:
    """Return the uv next to this interpreter (the template's venv), else the one on PATH."""
    sibling = Path(sys.executable).with_name("uv")
    if sibling.is_file() and os.access(sibling, os.X_OK):
        return str(sibling)
    return shutil.which("uv")


def pyenv_root() -> Path | None:
    """Return pyenv's root directory when pyenv is installed."""
    candidates = [os.environ.get("PYENV_ROOT"), str(Path.home() / ".pyenv"), "/root/.pyenv"]
    for candidate in candidates:
        if candidate and Path(candidate, "versions").is_dir():
            return Path(candidate)
    return None


def pyenv_version_list() -> str | None:
    """Return a PYENV_VERSION value that makes every installed pyenv Python visible.

    pyenv shims (python3.12, python3.13 ...) only answer for the versions PYENV_VERSION
    names, so uv's interpreter discovery fails without this. The current default comes
    first because the first entry also decides what a bare `python3` shim runs.
    """
    root = pyenv_root()
    if root is None:
        return None
    installed = sorted(
        (entry.name for entry in (root / "versions").iterdir() if entry.is_dir()),
        key=_version_key,
        reverse=True,
    )
    if not installed:
        return None
    current = os.environ.get("PYENV_VERSION") or _read_text(root / "version")
    first = [name for name in re.split(r"[:\s]+", current or "") if name in installed]
    return ":".join(first + [name for name in installed if name not in first])


def env_for_uv() -> dict[str, str]:
    """Return os.environ for running uv offline-from-python.org with pyenv Pythons visible."""
    env = dict(os.environ)
    env["UV_PYTHON_DOWNLOADS"] = "never"
    versions = pyenv_version_list()
    if versions:
        env["PYENV_VERSION"] = versions
    return env


def python_for(version: str) -> str | None:
    """Return the path of a CPython interpreter of minor version `version` (e.g. "3.13")."""
    return _python_from_uv(version) or _python_from_pyenv(version)


def _python_from_uv(version: str) -> str | None:
    uv = uv_executable()
    if uv is None:
        return None
    result = subprocess.run(
        # --system: skip virtual environments (e.g. the template's own .venv).
        [uv, "python", "find", "--system", "--no-python-downloads", f"cpython@{version}"],
        env=env_for_uv(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    path = result.stdout.strip()
    return path if result.returncode == 0 and path else None


def _python_from_pyenv(version: str) -> str | None:
    root = pyenv_root()
    if root is None:
        return None
    found = glob.glob(str(root / "versions" / f"{version}.*" / "bin" / f"python{version}"))
    found.sort(key=lambda path: _version_key(Path(path).parents[1].name), reverse=True)
    return found[0] if found else None


def _version_key(name: str) -> tuple[int, ...]:
    # Numeric order so that 3.10 sorts after 3.9; non-numeric names (e.g. "pypy") sort first.
    parts = name.split(".")
    return tuple(int(part) if part.isdigit() else -1 for part in parts)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
