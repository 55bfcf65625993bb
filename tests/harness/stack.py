"""A rendered project's compose stack on a real Docker engine, and its scripts run against it.

No registry is reachable here, so the official images the generated compose file names are
replaced by local stand-ins through the variables the file offers for that purpose
(POSTGRES_IMAGE, REDIS_IMAGE, API_IMAGE, TEST_IMAGE and the Dockerfile's PYTHON_IMAGE).
"""

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.harness import docker as lab
from tests.harness.environment import free_port, need
from tests.project import Project, run_command

COMPOSE_TIMEOUT = 600
BASE_FILE = "compose.yaml"
DEV_FILES = ("compose.yaml", "compose.override.yaml")


@dataclass(frozen=True)
class Images:
    api: str
    test: str
    postgres: str
    redis: str


@dataclass
class Stack:
    """One compose project of a rendered template, with its own name and published port."""

    project: Project
    images: Images
    name: str
    port: int
    # More variables for compose (a profile's image and port, for one).
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, str]:
        """The variables compose reads for this stack: its images and published port."""
        return {
            "API_IMAGE": self.images.api,
            "TEST_IMAGE": self.images.test,
            "POSTGRES_IMAGE": self.images.postgres,
            "REDIS_IMAGE": self.images.redis,
            "API_PORT": str(self.port),
            **self.extra,
        }

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, **self.settings}

    def _run(
        self, args: tuple[str, ...], files: tuple[str, ...], timeout: float
    ) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "-p", self.name]
        for file in files:
            command += ["-f", file]
        return subprocess.run(
            [*command, *args],
            cwd=self.project.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def compose(
        self, *args: str, files: tuple[str, ...] = (BASE_FILE,), check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = self._run(args, files, COMPOSE_TIMEOUT)
        if check and result.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}\n{self.logs(files)}"
            )
        return result

    def up(self, *services: str, files: tuple[str, ...] = (BASE_FILE,)) -> None:
        self.compose("up", "-d", "--wait", "--no-build", *services, files=files)

    def restart_api(self) -> None:
        """Restart only the api container and wait until its healthcheck passes again."""
        self.compose("restart", "api")
        lab.wait_until_healthy(self.container("api"))

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)

    def logs(self, files: tuple[str, ...] = (BASE_FILE,)) -> str:
        result = self._run(("logs", "--no-color", "--tail", "40"), files, 60)
        return f"--- compose logs ---\n{result.stdout[-6000:]}"

    def container(self, service: str) -> str:
        ids = self.compose("ps", "-a", "-q", service).stdout.split()
        assert len(ids) == 1, f"expected one {service} container, found {ids}"
        return ids[0]

    def inspect(self, service: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(
            lab.docker("inspect", self.container(service)).stdout
        )
        return data[0]

    def exec(
        self, service: str, *command: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.compose("exec", "-T", service, *command, check=check)

    def redis_cli(self, *args: str) -> str:
        """Run redis-cli (valkey-cli) in the redis container, authenticated from its secret."""
        script = (
            'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" '
            'exec "$(command -v valkey-cli || command -v redis-cli)" "$@"'
        )
        return self.exec("redis", "sh", "-c", script, "cli", *args).stdout.strip()

    def volume(self, name: str) -> str:
        return f"{self.name}_{name}"

    def network(self) -> str:
        return f"{self.name}_network"

    def read_volume(self, volume: str, *command: str) -> str:
        """Run a command in a throwaway container with the volume mounted read-only at /v."""
        mount = f"{self.volume(volume)}:/v:ro"
        return lab.docker("run", "--rm", "-v", mount, lab.helper_image(), *command).stdout

    def api_key(self) -> str:
        return (self.project.path / "secrets" / "api_keys").read_text().strip().split(",")[0]

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.api_key()}"},
            timeout=15.0,
        )

    def psql(self, sql: str) -> str:
        env = {k: v for k, v in _dotenv(self.project.path).items() if k.startswith("POSTGRES_")}
        result = self.exec(
            "db",
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            env["POSTGRES_USER"],
            "-d",
            env["POSTGRES_DB"],
            "-tAc",
            sql,
        )
        return result.stdout.strip()


def _dotenv(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (path / ".env").read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs if not key.startswith("#")}


def build_images(project: Project, answers: dict[str, Any]) -> Images:
    """Build the project's runtime and test images on the resolved bases (harness/images.py)."""
    lab.require_engine()
    python = project.python_version
    postgres = str(answers.get("postgres_version", "17"))
    base = lab.python_image(python)
    need(base is not None, lab.unavailable_reason(f"python:{python}-slim") or "no python image")
    postgres_image = lab.postgres_image(postgres)
    need(
        postgres_image is not None,
        lab.unavailable_reason(f"postgres:{postgres}-alpine") or "no postgres image",
    )
    assert base is not None
    assert postgres_image is not None
    tag = f"template-test/{project.path.name.replace('_', '-')}:{secrets.token_hex(4)}"
    args = {"PYTHON_IMAGE": base}
    lab.build_image(project.path, tag, build_args=args, target="runtime")
    lab.build_image(project.path, f"{tag}-test", build_args=args, target="test")
    redis = lab.redis_image(str(answers.get("redis_flavor", "redis")))
    return Images(api=tag, test=f"{tag}-test", postgres=postgres_image, redis=redis)


@dataclass(frozen=True)
class Rendered:
    project: Project
    images: Images


def new_stack(rendered: Rendered) -> Stack:
    name = f"tpl{secrets.token_hex(4)}"
    return Stack(rendered.project, rendered.images, name, free_port())


@contextmanager
def running_stack(rendered: Rendered) -> Iterator[Stack]:
    """A new stack, up and healthy for the block, then down with its volumes."""
    stack = new_stack(rendered)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def script_settings(stack: Stack) -> dict[str, str]:
    """What the generated scripts/ need to find the stack: its compose settings, project name
    and file, and a local image for their throwaway containers."""
    return {
        **stack.settings,
        "COMPOSE_PROJECT_NAME": stack.name,
        "COMPOSE_FILE": BASE_FILE,
        "BACKUP_HELPER_IMAGE": lab.helper_image(),
    }


def script_env(stack: Stack, **extra: str) -> dict[str, str]:
    """Environment for the generated scripts/: this process's, with the stack's settings."""
    return {**os.environ, **script_settings(stack), **extra}


def run_script(
    stack: Stack,
    script: str,
    *args: str,
    cwd: Path = Path("/"),
    env: dict[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run one of the project's scripts by absolute path from cwd (the root by default)."""
    path = stack.project.path / "scripts" / script
    return run_command(str(path), *args, cwd=cwd, env=env or script_env(stack), check=check)
