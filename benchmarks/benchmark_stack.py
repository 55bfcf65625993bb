"""Measure the generated stack: render to healthy (first build, code-only rebuild), image size,
and the memory of the whole stack at rest.

    uv run --locked python -m benchmarks.benchmark_stack  # needs an engine (.ci/run --setup-only)

Prints a Markdown table for docs/performance.md. Speed is measured here, never asserted by a test.
"""

import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness import docker as lab
from tests.harness.environment import free_port
from tests.project import render

# Docker Hub's python:3.13-slim, uncompressed, as `docker image inspect` reports it (no registry
# is reachable from the machines this runs on, so it is a stated figure, not a measured one).
OFFICIAL_SLIM_MB = 120
# How long the stack rests after it is healthy before its memory is read.
SETTLE_SECONDS = 30
_UNITS = {"B": 1e-6, "KiB": 1024 / 1e6, "MiB": 1024**2 / 1e6, "GiB": 1024**3 / 1e6}


def compose(project: Path, name: str, env: dict[str, str], *args: str) -> None:
    command = ["docker", "compose", "-p", name, "-f", "compose.yaml", *args]
    subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)


def main() -> None:
    if reason := lab.docker_ready() or lab.compose_ready():
        sys.exit(reason)
    base = lab.python_image("3.13")
    images = {ref: lab.required(ref) for ref in ("postgres:17-alpine", "redis:8-alpine")}
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        project = render(Path(out), {}).path
        tag = f"benchmark/ai-agent-api:{secrets.token_hex(4)}"
        name = f"bench{secrets.token_hex(3)}"
        env = {
            **os.environ,
            "API_IMAGE": tag,
            "POSTGRES_IMAGE": images["postgres:17-alpine"],
            "REDIS_IMAGE": images["redis:8-alpine"],
            "API_PORT": str(free_port()),
        }
        args = {"PYTHON_IMAGE": str(base)}
        try:
            lab.docker("builder", "prune", "-af", check=False, timeout=300)
            lab.build_image(project, tag, build_args=args, target="runtime")
            compose(project, name, env, "up", "-d", "--wait", "--no-build")
            first = time.perf_counter() - started

            main_py = project / "app" / "main.py"
            main_py.write_text(main_py.read_text() + "\n# a code-only change\n")
            started = time.perf_counter()
            lab.build_image(project, tag, build_args=args, target="runtime")
            compose(project, name, env, "up", "-d", "--wait", "--no-build")
            rebuild = time.perf_counter() - started

            size = image_mb(tag)
            base_size = image_mb(str(base))
            time.sleep(SETTLE_SECONDS)
            memory = stack_memory_mb(name)
        finally:
            compose(project, name, env, "down", "-v", "--remove-orphans")
            lab.docker("image", "rm", "-f", tag, check=False)
    print("| Measure | Value |")
    print("|---|---|")
    print(f"| render to healthy, first build (no build cache) | {first:.1f} s |")
    print(f"| code-only change: rebuild to healthy | {rebuild:.1f} s |")
    print(f"| api image size (stand-in base) | {size:.0f} MB |")
    print(f"| of which the base image `{base}` | {base_size:.0f} MB |")
    print(f"| added by the project (dependencies, code) | {size - base_size:.0f} MB |")
    print(
        f"| the same on the official python:3.13-slim (about {OFFICIAL_SLIM_MB} MB) "
        f"| about {OFFICIAL_SLIM_MB + size - base_size:.0f} MB |"
    )
    for service, used in sorted(memory.items()):
        print(f"| memory at rest, {service} | {used:.0f} MB |")
    print(f"| memory at rest, whole stack | {sum(memory.values()):.0f} MB |")


def image_mb(reference: str) -> float:
    return int(lab.docker("image", "inspect", "--format", "{{.Size}}", reference).stdout) / 1e6


def stack_memory_mb(project_name: str) -> dict[str, float]:
    """Each running container's memory (docker stats), by compose service."""
    ids = lab.docker("ps", "-q", "--filter", f"label=com.docker.compose.project={project_name}")
    names = ids.stdout.split()
    stats = lab.docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *names).stdout
    memory = {}
    for line in stats.splitlines():
        match = re.fullmatch(r"(\S+) ([\d.]+)(B|KiB|MiB|GiB) / .*", line.strip())
        if match is None:
            sys.exit(f"cannot read docker stats line: {line!r}")
        container, value, unit = match.groups()
        service = container.removeprefix(f"{project_name}-").rsplit("-", 1)[0]
        memory[service] = float(value) * _UNITS[unit]
    return memory


if __name__ == "__main__":
    main()
