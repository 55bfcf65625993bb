"""deploy/stack.yaml against compose.yaml, for every combination: the swarm stack keeps the
compose stack's settings, and drops only what `docker stack deploy` ignores or refuses, for
every combination that ships it. The swarm tier deploys it for real."""

from typing import Any

import pytest

from tests.project import render
from tests.render.conftest import having

APP_SERVICES = ("migrate", "api", "worker")
SERVERS = ("db", "redis")
# Keys the stack loader refuses (depends_on conditions, a top-level name) or that a stack
# cannot use (build); tmpfs, shm_size and security_opt are ignored by it.
NOT_IN_A_STACK = {"build", "depends_on", "tmpfs", "shm_size", "security_opt", "group_add"}


@pytest.fixture(scope="module", params=having("swarm"))
def files(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any]]:
    project = render(tmp_path_factory.mktemp("stack-file"), request.param)
    return project.load_yaml("compose.yaml"), project.load_yaml("deploy/stack.yaml")


def test_same_services_volumes_and_secrets(files: tuple[dict[str, Any], dict[str, Any]]) -> None:
    compose, stack = files

    # Not in the stack: the test suite and the observability profile (Prometheus).
    assert set(stack["services"]) == set(compose["services"]) - {"tests", "prometheus"}
    assert set(stack["volumes"]) == set(compose["volumes"]) - {"prometheus_data"}
    assert set(stack["secrets"]) == set(compose["secrets"])
    assert "name" not in stack
    assert stack["networks"]["network"]["driver"] == "overlay"


@pytest.mark.parametrize("service", [*APP_SERVICES, *SERVERS])
def test_each_service_keeps_its_image_environment_and_limits(
    files: tuple[dict[str, Any], dict[str, Any]], service: str
) -> None:
    compose, stack = files
    ours, theirs = stack["services"][service], compose["services"][service]

    assert ours["image"] == theirs["image"]
    assert ours.get("environment") == theirs.get("environment")
    assert ours.get("command") == theirs.get("command")
    assert ours.get("entrypoint") == theirs.get("entrypoint")
    assert ours["read_only"] is True
    assert ours["cap_drop"] == ["ALL"]
    limits = ours["deploy"]["resources"]["limits"]
    assert {"cpus", "memory", "pids"} <= set(limits)
    if service != "migrate":
        assert limits == theirs["deploy"]["resources"]["limits"]
        assert ours["healthcheck"].get("test") == theirs["healthcheck"].get("test")
    assert not NOT_IN_A_STACK & set(ours)
    assert ours["networks"] == ["network"]


@pytest.mark.parametrize("service", SERVERS)
def test_servers_run_as_their_own_users_unpublished(
    files: tuple[dict[str, Any], dict[str, Any]], service: str
) -> None:
    compose, stack = files
    ours = stack["services"][service]

    assert ours["user"] == compose["services"][service]["user"]
    assert not ours["user"].startswith("0")
    assert "ports" not in ours
    assert [s["uid"] for s in ours["secrets"]] == [ours["user"].split(":")[0]]
    assert ours["deploy"]["replicas"] == 1


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_gets_read_only_config_and_its_own_secrets(
    files: tuple[dict[str, Any], dict[str, Any]], service: str
) -> None:
    compose, stack = files
    ours = stack["services"][service]

    assert ours["configs"] == [
        {
            "source": "config",
            "target": "/app/config.yaml",
            "uid": "10001",
            "gid": "10001",
            "mode": 0o440,
        }
    ]
    assert {s["source"] for s in ours["secrets"]} == set(compose["services"][service]["secrets"])
    assert {(s["uid"], s["mode"]) for s in ours["secrets"]} == {("10001", 0o400)}


def test_api_updates_start_first_and_roll_back(
    files: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, stack = files
    api = stack["services"]["api"]

    assert api["deploy"]["update_config"]["order"] == "start-first"
    assert api["deploy"]["update_config"]["failure_action"] == "rollback"
    assert api["deploy"]["replicas"] == "${API_REPLICAS:-2}"
    assert api["deploy"]["endpoint_mode"] == "${ENDPOINT_MODE:-vip}"
    assert [port["target"] for port in api["ports"]] == [8000]
    assert api["ports"][0]["mode"] == "${API_PUBLISH_MODE:-ingress}"
    assert {"target": "/app/uploads", "source": "uploads"}.items() <= _volume(
        api, "/app/uploads"
    ).items()


def _volume(service: dict[str, Any], target: str) -> dict[str, Any]:
    for volume in service["volumes"]:
        if isinstance(volume, str) and volume.endswith(f":{target}"):
            source, _ = volume.split(":", 1)
            return {"source": source, "target": target}
        if isinstance(volume, dict) and volume["target"] == target:
            return volume
    raise AssertionError(f"no volume at {target}")
