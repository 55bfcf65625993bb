"""A rendered project deployed with its deploy/stack.yaml on a single-node swarm of the local
engine, through the project's own scripts/deploy-stack.

This kernel has no IPVS (docs/container-lab.md), so swarm's virtual IPs and routing mesh do not
work here. The harness deploys with what does: ENDPOINT_MODE=dnsrr (a service name resolves to
its tasks' addresses) and API_PUBLISH_MODE=host with API_PORT=0, which gives every api task a
random port of its own on this host. That reaches each replica separately; requests through
the service name come from a container attached to the stack's overlay network, as another
service would send them. A fixed published port cannot be used here: two replicas on one node
(and a new task started before the old one stops) would need it twice.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.harness import docker as lab
from tests.harness.stack import Images
from tests.project import Project, run_command

CONVERGE_SECONDS = 300
REMOVE_SECONDS = 120


@contextmanager
def swarm_mode() -> Iterator[None]:
    """A swarm on this engine for the block: the one already active, or a new single-node
    swarm that is left again afterwards (only if this block started it)."""
    state = lab.docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    if state == "active":
        yield
        return
    assert state == "inactive", f"the engine's swarm is {state}; expected active or inactive"
    lab.docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    try:
        yield
    finally:
        lab.docker("swarm", "leave", "--force", check=False)


@dataclass
class SwarmStack:
    project: Project
    images: Images
    name: str = field(default_factory=lambda: f"swarm{secrets.token_hex(3)}")

    def settings(self, **overrides: str) -> dict[str, str]:
        return {
            "API_IMAGE": self.images.api,
            "POSTGRES_IMAGE": self.images.postgres,
            "REDIS_IMAGE": self.images.redis,
            "ENDPOINT_MODE": "dnsrr",
            "API_PUBLISH_MODE": "host",
            "API_PORT": "0",
            "API_REPLICAS": "2",
            "WORKER_REPLICAS": "1",
            # No registry: the nodes (this one) use the images the engine has.
            "RESOLVE_IMAGE": "never",
            **overrides,
        }

    def deploy(self, **overrides: str) -> subprocess.CompletedProcess[str]:
        script = self.project.path / "scripts" / "deploy-stack"
        env = {**os.environ, **self.settings(**overrides)}
        return run_command(str(script), self.name, cwd=self.project.path, env=env)

    def script(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one of the project's scripts against this stack (STACK_NAME, on this node)."""
        env = {**os.environ, "STACK_NAME": self.name, "BACKUP_HELPER_IMAGE": lab.helper_image()}
        script = self.project.path / "scripts" / name
        return run_command(str(script), *args, cwd=self.project.path, env=env, check=check)

    def service(self, name: str) -> str:
        return f"{self.name}_{name}"

    def inspect_service(self, name: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(
            lab.docker("service", "inspect", self.service(name)).stdout
        )
        return data[0]

    def containers(self, service: str) -> list[str]:
        """The running containers of a service's tasks on this node."""
        label = f"label=com.docker.swarm.service.name={self.service(service)}"
        result = lab.docker("ps", "-q", "--no-trunc", "--filter", label)
        return result.stdout.split()

    def inspect(self, container: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(lab.docker("inspect", container).stdout)
        return data[0]

    def healthy(self, service: str) -> list[str]:
        healthy = []
        for container in self.containers(service):
            state = self.inspect(container)["State"]
            if (state.get("Health") or {}).get("Status") == "healthy":
                healthy.append(container)
        return healthy

    def ended_tasks(self, service: str) -> list[str]:
        """Tasks of the service that stopped (failed, or replaced), with their error."""
        return lab.docker(
            "service",
            "ps",
            self.service(service),
            "--filter",
            "desired-state=shutdown",
            "--format",
            "{{.Name}} {{.CurrentState}} {{.Error}}",
        ).stdout.splitlines()

    def migrated(self) -> bool:
        tasks = lab.docker(
            "service",
            "ps",
            self.service("migrate"),
            "--format",
            "{{.DesiredState}} {{.CurrentState}}",
        ).stdout.splitlines()
        return any(line.startswith("Shutdown Complete") for line in tasks)

    def wait_converged(self, api_image: str | None = None) -> None:
        """Wait until migrations ran and every api and worker replica is healthy (on the
        given image, when one is named), and no update is still rolling."""
        want = {"api": 2, "worker": 1, "db": 1, "redis": 1}
        deadline = time.monotonic() + CONVERGE_SECONDS
        while time.monotonic() < deadline:
            counts = {service: len(self.healthy(service)) for service in want}
            done = counts == want and self.migrated() and self._updated("api")
            if done and api_image is not None:
                images = {self.inspect(c)["Config"]["Image"] for c in self.containers("api")}
                done = images == {api_image}
            if done:
                return
            time.sleep(1)
        raise AssertionError(f"stack {self.name} did not converge: {counts}\n{self.diagnosis()}")

    def _updated(self, service: str) -> bool:
        status = self.inspect_service(service).get("UpdateStatus") or {}
        return status.get("State", "completed") in {"completed", "rollback_completed"}

    def replica_urls(self) -> list[str]:
        """The host port each api task published (API_PORT=0: a random one per task)."""
        urls = []
        for container in self.healthy("api"):
            ports = self.inspect(container)["NetworkSettings"]["Ports"]["8000/tcp"]
            urls.append(f"http://127.0.0.1:{ports[0]['HostPort']}")
        return urls

    def api_key(self) -> str:
        return (self.project.path / "secrets" / "api_keys").read_text().strip().split(",")[0]

    def client(self, url: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.api_key()}"}
        return httpx.Client(base_url=url, headers=headers, timeout=15.0)

    def network(self) -> str:
        return f"{self.name}_network"

    def run_in_network(
        self, *command: str, network: str | None = None, detach: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run the api image's python in a throwaway container on the stack's network (or
        another one), as a neighbour service would."""
        options = ["--detach"] if detach else ["--rm"]
        return lab.docker(
            "run",
            *options,
            "--label",
            lab.TEST_LABEL,
            "--network",
            network or self.network(),
            "--entrypoint",
            "python",
            self.images.api,
            *command,
            timeout=180,
        )

    def remove(self) -> None:
        """docker stack rm, then wait until its containers and network are gone: a deploy of
        the same name before that fails on the network being removed."""
        lab.docker("stack", "rm", self.name, check=False)
        label = f"label=com.docker.stack.namespace={self.name}"
        deadline = time.monotonic() + REMOVE_SECONDS
        while time.monotonic() < deadline:
            left = lab.docker("ps", "-aq", "--filter", label).stdout.split()
            network = lab.docker("network", "inspect", self.network(), check=False)
            if not left and network.returncode != 0:
                return
            time.sleep(1)
        raise AssertionError(f"stack {self.name} still has containers or its network")

    def purge(self) -> None:
        self.remove()
        for volume in ("postgres_data", "redis_data", "api_logs", "uploads"):
            lab.docker("volume", "rm", f"{self.name}_{volume}", check=False)

    def diagnosis(self) -> str:
        tasks = lab.docker(
            "stack",
            "ps",
            self.name,
            "--no-trunc",
            "--format",
            "{{.Name}} {{.DesiredState}} {{.CurrentState}} {{.Error}}",
            check=False,
        )
        logs = []
        for service in ("api", "migrate", "worker", "db"):
            try:
                result = lab.docker(
                    "service",
                    "logs",
                    "--tail",
                    "15",
                    self.service(service),
                    check=False,
                    timeout=30,
                )
            except subprocess.TimeoutExpired:
                logs.append(f"--- {service}: docker service logs did not answer in 30 s ---")
                continue
            logs.append(f"--- {service} ---\n{result.stdout[-3000:]}{result.stderr[-1000:]}")
        return f"{tasks.stdout}\n" + "\n".join(logs)
