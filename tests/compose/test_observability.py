"""The observability profile on a real engine: Prometheus scrapes the api and the worker,
loads alert rules that promtool accepts, and is as locked down as the other services."""

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.compose.conftest import FIRST_VARIANT_ONLY
from tests.harness import docker as lab
from tests.harness.environment import free_port
from tests.harness.stack import Rendered, Stack, new_stack

PROFILE = ("--profile", "observability")
# Two scrape intervals (15 s), and the time for a worker's address to be discovered.
SCRAPE_SECONDS = 60

# The default answers only: the profile (its compose service, deploy/prometheus/) and the
# metrics it scrapes take no answer, and a valkey stack boots in every other module
# (tests/render/test_compose_file.py checks that the profile is the same for each variant).
pytestmark = FIRST_VARIANT_ONLY


@pytest.fixture(scope="module")
def observed(rendered: Rendered) -> Iterator[Stack]:
    stack = new_stack(rendered)
    port = free_port()
    stack.extra = {"PROMETHEUS_IMAGE": lab.prometheus_image(), "PROMETHEUS_PORT": str(port)}
    try:
        stack.compose(*PROFILE, "up", "-d", "--wait", "--no-build")
        yield stack
    finally:
        stack.compose(*PROFILE, "down", "-v", "--remove-orphans", "--timeout", "20", check=False)


def prometheus(stack: Stack, path: str) -> Any:
    url = f"http://127.0.0.1:{stack.extra['PROMETHEUS_PORT']}{path}"
    answer = httpx.get(url, timeout=10.0)
    answer.raise_for_status()
    return answer.json()["data"]


def test_prometheus_scrapes_the_api_and_the_worker(observed: Stack) -> None:
    deadline = time.monotonic() + SCRAPE_SECONDS
    health: dict[str, str] = {}
    while time.monotonic() < deadline:
        targets = prometheus(observed, "/api/v1/targets")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        if health == {"api": "up", "worker": "up"}:
            break
        time.sleep(2)

    assert health == {"api": "up", "worker": "up"}
    requests = prometheus(observed, "/api/v1/query?query=http_requests_total")["result"]
    assert any(r["metric"].get("handler") == "/health" for r in requests)


def test_alert_rules_pass_promtool_and_are_loaded(observed: Stack) -> None:
    check = observed.exec("prometheus", "promtool", "check", "rules", "/etc/prometheus/alerts.yml")
    groups = prometheus(observed, "/api/v1/rules")["groups"]
    rules = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}

    assert "SUCCESS: 4 rules found" in check.stdout
    assert set(rules) == {"ApiDown", "ApiHighErrorRate", "ApiSlowHealth", "WorkerDown"}
    assert set(rules.values()) <= {"ok", "unknown"}


def test_prometheus_runs_locked_down_on_loopback(observed: Stack) -> None:
    inspected = observed.inspect("prometheus")
    host = inspected["HostConfig"]
    bindings = [b for b in inspected["NetworkSettings"]["Ports"].values() if b]
    config_write = observed.exec(
        "prometheus", "sh", "-c", "echo x >> /etc/prometheus/prometheus.yml", check=False
    )

    assert inspected["Config"]["User"] == "65534:65534"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    assert bindings == [[{"HostIp": "127.0.0.1", "HostPort": observed.extra["PROMETHEUS_PORT"]}]]
    assert config_write.returncode != 0
