"""The boot tier's fixtures: the default project installed once, and booted services."""

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.combinations import for_tier
from tests.harness.api import Process, Service, api_env, new_secret, running_api
from tests.harness.environment import free_port
from tests.harness.postgres_server import PostgresServer
from tests.harness.redis_server import RedisServer
from tests.project import Project, install, render

BOOTED = for_tier("boot")


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The default combination, rendered and installed once for the modules that share it."""
    return install(render(tmp_path_factory.mktemp("default") / "out", {}))


def _configure(project: Project, fake_openai_url: str | None) -> None:
    """Lift the rate limit (the schemathesis run is hundreds of requests), turn the playground
    on, use the fake LLM."""
    config_file = project.path / "config" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["rate_limit"]["requests"] = 100_000
    # The browser test opens the playground (off by default outside development).
    config["playground"]["enabled"] = True
    if fake_openai_url is not None:
        config["llm"]["base_url"] = fake_openai_url
    config_file.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module", params=BOOTED)
def service(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[Service]:
    answers: dict[str, Any] = request.param
    work = tmp_path_factory.mktemp("boot")
    project = install(render(work / "out", answers))
    database = f"boot_{secrets.token_hex(4)}"
    env = api_env(
        work,
        database_url=postgres.create_database(database),
        redis_url=redis_server.url,
        API_KEYS=f"{new_secret()},{new_secret()}",
        OPENAI_API_KEY=new_secret(),
    )
    fake = fake_url = None
    if answers.get("llm_provider") == "openai":
        fake_port = free_port()
        fake_command = [str(project.path / ".venv/bin/python"), "-m", "tests.fake_openai"]
        fake = Process(project, [*fake_command, "--port", str(fake_port)], env, work / "fake.log")
        fake.start()
        fake.wait_for_http(f"http://127.0.0.1:{fake_port}/")
        fake_url = f"http://127.0.0.1:{fake_port}/v1"
    _configure(project, fake_url)
    try:
        with running_api(project, env, work / "api.log") as api:
            yield Service(project, api, env["API_KEYS"].split(",")[0], work / "logs")
    finally:
        if fake is not None:
            fake.stop()
