"""A rendered project's api running under uvicorn on the host: its process, settings and config."""

import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.harness.environment import free_port
from tests.project import Project, project_env

READY_SECONDS = 60.0
STOP_SECONDS = 30.0


@dataclass
class Process:
    """A long-running command of the project, its output in a log file."""

    project: Project
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.args, cwd=self.project.path, env=self.env, stdout=out, stderr=out
            )

    def stop(self) -> int:
        """Send SIGTERM, as an orchestrator would, and return the exit code."""
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"{self.args} ignored SIGTERM for {STOP_SECONDS} s") from None

    def kill(self) -> None:
        """SIGKILL: no handler runs, as when a host or the OOM killer takes the process."""
        assert self.popen is not None
        self.popen.kill()
        self.popen.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_http(self, url: str) -> None:
        """Poll until the URL answers (bounded), failing early if the process died."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert self.popen is not None
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"{self.args} exited {self.popen.returncode}:\n{self.output()}"
                )
            try:
                httpx.get(url, timeout=1.0)
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            return
        raise AssertionError(f"{url} did not answer within {READY_SECONDS} s:\n{self.output()}")


def start_worker(project: Project, env: dict[str, str], work: Path) -> Process:
    """Start the project's worker as compose does (`python -m app.worker`); return it once its
    healthcheck (`python -m app.alive`) passes. Each worker gets a temporary directory of its
    own, where it proves it is alive."""
    work.mkdir(parents=True, exist_ok=True)
    env = {**env, "TMPDIR": str(work)}
    python = str(project.path / ".venv/bin/python")
    worker = Process(project, [python, "-m", "app.worker"], env, work / "worker.log")
    worker.start()
    try:
        _wait_until_alive(worker, python, env)
    except BaseException:
        # Not left running: nobody would stop it, and it would outlive the test's servers.
        worker.kill()
        raise
    return worker


def _wait_until_alive(worker: Process, python: str, env: dict[str, str]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        assert worker.popen is not None
        if worker.popen.poll() is not None:
            raise AssertionError(f"worker exited {worker.popen.returncode}:\n{worker.output()}")
        check = subprocess.run(
            [python, "-m", "app.alive"],
            cwd=worker.project.path,
            env=env,
            capture_output=True,
            check=False,
        )
        if check.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"worker not alive within {READY_SECONDS} s:\n{worker.output()}")


def new_secret() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class Api:
    """The project's api as its image starts it (`python -m app`), on a free loopback port."""

    project: Project
    env: dict[str, str]
    log: Path
    process: Process = field(init=False)
    base_url: str = field(init=False)

    def start(self) -> None:
        """Start it and return once /health/live answers."""
        port = free_port()
        command = [str(self.project.path / ".venv/bin/python"), "-m", "app"]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        self.process = Process(self.project, command, self.env, self.log)
        self.process.start()
        self.base_url = f"http://127.0.0.1:{port}"
        try:
            self.process.wait_for_http(f"{self.base_url}/health/live")
        except BaseException:
            # Not left running: nobody would stop it, and it would outlive the test's servers.
            self.process.kill()
            raise

    def stop(self) -> int:
        """SIGTERM, as an orchestrator sends it; the exit code (also once it has stopped)."""
        return self.process.stop()

    def restart(self, **env: str) -> None:
        """Stop it and start it again with some settings changed (on another port)."""
        self.stop()
        self.env = {**self.env, **env}
        self.start()

    def output(self) -> str:
        return self.process.output()

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=10.0
        )


@contextmanager
def running_api(
    project: Project, env: dict[str, str], log: Path, *, migrate: bool = True
) -> Iterator[Api]:
    """The one way the tests boot an api: migrate its database to the head (unless the test
    migrates it itself), start it, and stop it when the block ends, whatever the test did to it.
    """
    if migrate:
        project.uv("run", "--locked", "alembic", "upgrade", "head", env=env)
    api = Api(project, env, log)
    api.start()
    try:
        yield api
    finally:
        api.stop()


def config_file(project: Project, path: Path, overrides: dict[str, dict[str, Any]]) -> Path:
    """Write the project's config.yaml with some values changed; return its path."""
    config = yaml.safe_load((project.path / "config" / "config.yaml").read_text())
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values}
    path.write_text(yaml.safe_dump(config))
    return path


def api_env(work: Path, *, database_url: str, redis_url: str, **values: str) -> dict[str, str]:
    """Environment of an api run in production mode; logs and uploads under work/."""
    return project_env(
        ENVIRONMENT="production",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=new_secret(),
        LOGS_DIR=str(work / "logs"),
        UPLOADS_DIR=str(work / "uploads"),
        **values,
    )


@dataclass
class Service:
    project: Project
    api: Api
    api_key: str
    logs_dir: Path

    @property
    def base_url(self) -> str:
        return self.api.base_url

    def client(self) -> httpx.Client:
        return self.api.client(self.api_key)
