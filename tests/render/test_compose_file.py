"""The compose file of every combination, read as data: the rules that need no engine."""

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.combinations import SUPPORTED_COMBINATIONS, answers_of, for_tier
from tests.project import render
from tests.render.hooks import init_secrets


@pytest.fixture(scope="module", params=SUPPORTED_COMBINATIONS)
def compose(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    project = render(tmp_path_factory.mktemp("compose-file"), request.param)
    data = yaml.safe_load((project.path / "compose.yaml").read_text())
    return data, request.param, project.path


def test_no_obsolete_version_key_and_the_four_services(compose: tuple[Any, ...]) -> None:
    data, _, _ = compose

    assert "version" not in data
    assert {"api", "migrate", "db", "redis"} <= set(data["services"])


def test_postgres_volume_path_follows_the_major_version(compose: tuple[Any, ...]) -> None:
    data, answers, _ = compose
    major = int(answers.get("postgres_version", "17"))

    expected = "/var/lib/postgresql" if major >= 18 else "/var/lib/postgresql/data"
    assert data["services"]["db"]["volumes"] == [f"postgres_data:{expected}"]
    assert data["services"]["db"]["image"] == f"${{POSTGRES_IMAGE:-postgres:{major}-alpine}}"


def test_redis_flavor_picks_server_cli_and_image(compose: tuple[Any, ...]) -> None:
    data, answers, _ = compose
    flavor = answers.get("redis_flavor", "redis")
    redis = data["services"]["redis"]

    name = "valkey" if flavor == "valkey" else "redis"
    image = "valkey/valkey:8-alpine" if flavor == "valkey" else "redis:8-alpine"
    assert redis["image"] == f"${{REDIS_IMAGE:-{image}}}"
    script = redis["entrypoint"][2]
    # The password is read first, and an unreadable or empty file stops the container.
    assert script.startswith(
        'password="$$(cat /run/secrets/redis_password)" && [ -n "$$password" ]'
    )
    assert "exit 1; };" in script
    assert (
        f"exec docker-entrypoint.sh {name}-server --appendonly yes --appendfsync everysec" in script
    )
    assert script.endswith('--requirepass "$$password"')
    assert f"{name}-cli ping" in redis["healthcheck"]["test"][1]


def test_only_the_api_publishes_a_port_on_loopback(compose: tuple[Any, ...]) -> None:
    data, answers, _ = compose
    services = data["services"]

    # Prometheus publishes too, on loopback, but only with its opt-in profile.
    published = [name for name, s in services.items() if "ports" in s]
    assert published == ["api", "prometheus"]
    assert services["prometheus"]["profiles"] == ["observability"]
    assert services["prometheus"]["ports"] == ["127.0.0.1:${PROMETHEUS_PORT:-9090}:9090"]
    port = answers.get("api_port", "8000")
    assert services["api"]["ports"] == [f"127.0.0.1:${{API_PORT:-{port}}}:8000"]


def test_config_bind_is_read_only_and_never_created(compose: tuple[Any, ...]) -> None:
    data, _, _ = compose
    binds = [v for v in data["services"]["api"]["volumes"] if isinstance(v, dict)]

    assert binds == [
        {
            "type": "bind",
            "source": "./config/config.yaml",
            "target": "/app/config.yaml",
            "read_only": True,
            "bind": {"create_host_path": False},
        }
    ]
    data_volumes = {"postgres_data", "redis_data", "api_logs", "uploads"}
    assert set(data["volumes"]) == data_volumes | {"prometheus_data"}


def test_api_waits_for_healthy_dependencies_and_one_migration(compose: tuple[Any, ...]) -> None:
    data, _, _ = compose
    depends = data["services"]["api"]["depends_on"]

    assert depends["db"]["condition"] == "service_healthy"
    assert depends["redis"]["condition"] == "service_healthy"
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert data["services"]["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert data["services"]["migrate"]["restart"] == "no"


def test_dockerfile_base_image_follows_the_python_version(compose: tuple[Any, ...]) -> None:
    _, answers, path = compose
    dockerfile = (path / "Dockerfile").read_text()

    python = answers.get("python_version", "3.13")
    assert f"ARG PYTHON_IMAGE=python:{python}-slim" in dockerfile
    assert "# syntax" not in dockerfile
    assert ".env" in (path / ".dockerignore").read_text().splitlines()


def test_secrets_are_files_not_environment(compose: tuple[Any, ...]) -> None:
    data, _, _ = compose
    services = data["services"]

    # The secret files generation writes (scripts/init_secrets.py, their one list) are the
    # secrets compose hands over, each from its file under secrets/.
    names = {*init_secrets.GENERATED_SECRETS, *init_secrets.EMPTY_SECRETS}
    assert data["secrets"] == {name: {"file": f"./secrets/{name}"} for name in names}
    assert services["db"]["environment"]["POSTGRES_PASSWORD_FILE"] == (
        "/run/secrets/postgres_password"
    )
    for name in ("api", "migrate", "db", "redis"):
        environment = json.dumps(services[name].get("environment", {}))
        assert "PASSWORD}" not in environment
        assert "API_KEYS}" not in environment


def test_every_tmpfs_has_a_size(compose: tuple[Any, ...]) -> None:
    data, _, _ = compose

    mounts = [
        (name, entry)
        for name, service in data["services"].items()
        for entry in service.get("tmpfs", [])
    ]

    assert mounts, "the api writes /tmp on a read-only root: it needs a tmpfs"
    assert [(name, entry) for name, entry in mounts if "size=" not in entry] == []


# What the compose tier's CIS checks (tests/compose/test_hardening.py) find on a booted stack,
# read here for every combination, PostgreSQL 16 and 18 included.
SERVER_USERS = {"db": "70:70", "redis": "999:1000"}


def test_db_and_redis_run_as_the_alpine_images_users_with_secrets_readable(
    compose: tuple[Any, ...],
) -> None:
    data, _, _ = compose
    services = data["services"]

    assert {name: services[name]["user"] for name in SERVER_USERS} == SERVER_USERS
    for name in SERVER_USERS:
        # The secret files' group, as for the api (secrets/ in README).
        assert services[name]["group_add"] == ["${SECRETS_GID:-0}"], name
    assert services["db"]["tmpfs"] == [
        "/var/run/postgresql:size=1m,uid=70,gid=70,mode=3775",
        "/tmp:size=16m,mode=1777",
    ]
    assert services["redis"]["tmpfs"] == ["/tmp:size=16m,mode=1777"]


def test_every_service_is_unprivileged_read_only_and_limited(compose: tuple[Any, ...]) -> None:
    data, _, _ = compose
    # The stack's services; `tests` (profile test) is the project's test suite, run by hand.
    services = {n: s for n, s in data["services"].items() if "profiles" not in s}

    for name, service in services.items():
        assert service["cap_drop"] == ["ALL"], name
        assert "cap_add" not in service, name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["read_only"] is True, name
        assert service.get("restart") in ("unless-stopped", "no"), name
    # Those that keep running have CPU, memory and process limits.
    for name, service in services.items():
        if service["restart"] == "unless-stopped":
            limits = service["deploy"]["resources"]["limits"]
            assert {"cpus", "memory", "pids"} <= set(limits), name
            assert 0 < float(limits["cpus"]) <= 1, name


def test_each_shared_fact_is_written_once(compose: tuple[Any, ...]) -> None:
    data, _, path = compose
    text = (path / "compose.yaml").read_text()
    services = data["services"]

    # Hardening, the secrets' group, the config mount and the two healthcheck timings are YAML
    # anchors: one edit changes every service that shares them.
    for fact in ("no-new-privileges:true", "${SECRETS_GID:-0}", "./config/config.yaml"):
        assert text.count(fact) == 1, fact
    assert text.count("start_interval:") == 2  # servers (db, redis) and app (api, worker)
    timings = {k: v for k, v in services["api"]["healthcheck"].items() if k != "test"}
    assert {k: v for k, v in services["worker"]["healthcheck"].items() if k != "test"} == timings
    assert services["db"]["healthcheck"]["retries"] == services["redis"]["healthcheck"]["retries"]
    assert services["api"]["depends_on"] == services["worker"]["depends_on"]


def test_what_the_compose_tier_boots_for_one_variant_reads_the_same_in_each(
    tmp_path: Path,
) -> None:
    """tests/compose/test_observability.py and test_dev_override.py boot the default answers
    only, because the files they prove take no answer: the observability profile (its service,
    deploy/prometheus/) and the development override read the same in each compose variant."""

    def profile_and_override(index: int, answers: dict[str, Any]) -> list[Any]:
        project = render(tmp_path / str(index), answers)
        return [
            project.load_yaml("compose.yaml")["services"]["prometheus"],
            project.load_yaml("deploy/prometheus/prometheus.yml"),
            project.load_yaml("deploy/prometheus/alerts.yml"),
            project.load_yaml("compose.override.yaml"),
        ]

    first, *others = for_tier("compose")
    expected = profile_and_override(0, answers_of(first))

    assert others
    for index, variant in enumerate(others, start=1):
        assert profile_and_override(index, answers_of(variant)) == expected, variant.id
