"""Measure the generated stack: render to healthy (first build, code-only rebuild), image size.

    uv run python -m scripts.benchmark_stack    # needs an engine: bash .ci/run --setup-only

Prints a Markdown table for docs/performance.md. Speed is measured here, never asserted by a test.
"""

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness import docker as lab
from tests.harness.environment import free_port
from tests.project import render


def compose(project: Path, name: str, env: dict[str, str], *args: str) -> None:
    command = ["docker", "compose", "-p", name, "-f", "compose.yaml", *args]
    subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)


def main() -> None:
    if reason := lab.docker_ready() or lab.compose_ready():
        sys.exit(reason)
    base = lab.python_image("3.13")
    images = lab.ensure_images("postgres:17-alpine", "redis:8-alpine")
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

            size = int(lab.docker("image", "inspect", "--format", "{{.Size}}", tag).stdout)
        finally:
            compose(project, name, env, "down", "-v", "--remove-orphans")
            lab.docker("image", "rm", "-f", tag, check=False)
    print("| Measure | Value |")
    print("|---|---|")
    print(f"| render to healthy, first build (no build cache) | {first:.1f} s |")
    print(f"| code-only change: rebuild to healthy | {rebuild:.1f} s |")
    print(f"| api image size | {size / 1e6:.0f} MB |")


if __name__ == "__main__":
    main()
