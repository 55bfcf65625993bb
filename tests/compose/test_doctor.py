"""scripts/doctor finds the usual container problems of a real stack and names the fix."""

import re
import shlex
import subprocess
from datetime import UTC, datetime

from tests.compose.conftest import FIRST_VARIANT_ONLY
from tests.harness import docker as lab
from tests.harness.stack import Stack, run_script

# The first variant only: the doctor checks the `redis` service by its name and port, the same
# in each flavor, and reads the stack's own project name, not the project's.
pytestmark = FIRST_VARIANT_ONLY


def test_doctor_fails_before_the_stack_is_up(fresh_stack: Stack) -> None:
    result = run_script(fresh_stack, "doctor", check=False)

    assert result.returncode == 1
    assert "FAIL  there is no api container" in result.stdout
    assert "fix: docker compose up -d --wait" in result.stdout
    assert f"FAIL  volume {fresh_stack.volume('postgres_data')} does not exist" in result.stdout


def test_doctor_passes_on_a_healthy_stack(stack: Stack) -> None:
    report = run_script(stack, "doctor").stdout

    assert "No problems found." in report
    assert f"api container {stack.name}-api-1 is on {stack.network()}" in report
    assert re.search(r"api resolves db:5432 \(to [\d.]+\) and connects to it", report)
    assert re.search(r"api resolves redis:6379 \(to [\d.]+\) and connects to it", report)
    for volume in ("postgres_data", "redis_data", "api_logs", "uploads"):
        assert f"volume {stack.volume(volume)}: files at /var/lib/docker/volumes/" in report
    assert "/app/config.yaml is mounted read-only in api" in report
    assert f"api publishes 8000/tcp -> 127.0.0.1:{stack.port}" in report
    assert f"db publishes no port (reachable only on {stack.network()})" in report


def test_doctor_names_the_container_off_the_network_and_the_fix_works(stack: Stack) -> None:
    api = stack.inspect("api")["Name"].lstrip("/")

    lab.docker("network", "disconnect", stack.network(), api)
    broken = run_script(stack, "doctor", check=False)
    fixes = [line.split("fix: ", 1)[1] for line in broken.stdout.splitlines() if "fix: " in line]
    subprocess.run(shlex.split(fixes[0]), check=True, capture_output=True, timeout=60)
    fixed_at = datetime.now(UTC)
    lab.wait_until_healthy(api, checked_after=fixed_at)
    again = run_script(stack, "doctor", check=False)

    assert broken.returncode == 1
    assert f"FAIL  api container {api} is not on network {stack.network()}" in broken.stdout
    assert "api cannot reach db:5432" in broken.stdout
    assert fixes[0] == f"docker network connect --alias api {stack.network()} {api}"
    assert again.returncode == 0, again.stdout
    assert "No problems found." in again.stdout
