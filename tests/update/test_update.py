"""A generated project follows the template's releases with cruft, keeping its edits and secrets.

The project is created from v1.0.0, edited and committed as a team would, then updated to
v2.0.0 (a clean merge) or to v3.0.0 (a change to a line the team also changed).
"""

import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.harness.environment import venv_tool
from tests.harness.postgres_server import PostgresServer
from tests.harness.redis_server import RedisServer
from tests.project import Project, assert_only_passes, install, project_env
from tests.project import run_command as run
from tests.update.releases import (
    DOCKERFILE_LINE,
    NEW_SCRIPT,
    NEW_SCRIPT_TEXT,
    TEMPLATE_HISTORY_LINE,
    USER_HISTORY_LINE,
    TemplateRepo,
    cruft_create,
)
from tests.update.team import USER_README_LINE, USER_ROUTER, USER_TEST, Kept, edit_as_a_team


@dataclass(frozen=True)
class Update:
    project: Project
    before: Kept
    created_output: str
    behind: int
    output: str


@pytest.fixture(scope="module")
def updated(template_repo: TemplateRepo, tmp_path_factory: pytest.TempPathFactory) -> Update:
    """A project from v1.0.0, edited by its team, updated to v2.0.0 with `cruft update -y`."""
    project, created = cruft_create(
        template_repo, tmp_path_factory.mktemp("clean") / "out", "v1.0.0"
    )
    before = Kept.of(project)
    edit_as_a_team(project, template_repo.env)
    check = run(
        venv_tool("cruft"),
        "check",
        "--checkout",
        "v2.0.0",
        cwd=project.path,
        env=template_repo.env,
        check=False,
    )
    result = run(
        venv_tool("cruft"),
        "update",
        "-y",
        "--checkout",
        "v2.0.0",
        cwd=project.path,
        env=template_repo.env,
    )
    return Update(project, before, created, check.returncode, result.stdout + result.stderr)


def test_cruft_create_records_the_template_and_the_release(
    updated: Update, template_repo: TemplateRepo
) -> None:
    # As committed before the update rewrote it.
    state = yaml.safe_load(
        run(
            "git", "show", "HEAD:.cruft.json", cwd=updated.project.path, env=template_repo.env
        ).stdout
    )

    # cruft records a file:// URL as the path it names.
    assert state["template"] == str(template_repo.path)
    assert state["checkout"] == "v1.0.0"
    assert state["commit"] == template_repo.git("rev-list", "-n", "1", "v1.0.0").strip()
    assert "secrets/ holds 4 new random values" in updated.created_output


def test_cruft_check_says_behind_then_up_to_date(
    updated: Update, template_repo: TemplateRepo
) -> None:
    after = run(
        venv_tool("cruft"),
        "check",
        "--checkout",
        "v2.0.0",
        cwd=updated.project.path,
        env=template_repo.env,
        check=False,
    )

    assert updated.behind != 0
    assert after.returncode == 0, after.stdout + after.stderr


def test_the_release_arrives(updated: Update) -> None:
    path = updated.project.path
    compose = yaml.safe_load((path / "compose.yaml").read_text(encoding="utf-8"))
    config = yaml.safe_load((path / "config" / "config.yaml").read_text(encoding="utf-8"))
    script = path / NEW_SCRIPT

    assert compose["services"]["api"]["healthcheck"]["interval"] == "10s"
    assert (path / "Dockerfile").read_text(encoding="utf-8").endswith(DOCKERFILE_LINE)
    assert script.read_text(encoding="utf-8") == NEW_SCRIPT_TEXT
    assert script.stat().st_mode & stat.S_IXUSR
    assert config["uploads"]["retention_days"] == 30
    sections = (path / "app" / "config" / "sections.py").read_text()
    assert "retention_days: PositiveInt = 30" in sections


def test_the_teams_edits_are_kept(updated: Update) -> None:
    path = updated.project.path
    config = yaml.safe_load((path / "config" / "config.yaml").read_text(encoding="utf-8"))
    main = (path / "app" / "main.py").read_text(encoding="utf-8")

    assert (path / "app" / "hello" / "router.py").read_text(encoding="utf-8") == USER_ROUTER
    assert (path / "tests" / "test_ping.py").read_text(encoding="utf-8") == USER_TEST
    assert "app.include_router(ping_router" in main
    assert config["llm"]["history_limit"] == 20
    assert (path / "README.md").read_text(encoding="utf-8").endswith(USER_README_LINE)


def test_secrets_and_env_are_untouched_and_nothing_is_left_over(
    updated: Update, template_repo: TemplateRepo
) -> None:
    path = updated.project.path
    leftovers = [p.name for p in path.rglob("*") if p.suffix in {".rej", ".orig"}]
    status = run(
        "git", "status", "--porcelain", "--ignored", cwd=path, env=template_repo.env
    ).stdout

    assert Kept.of(updated.project) == updated.before
    assert leftovers == []
    # Only what the release changed, and cruft's record of it; no stray file anywhere.
    # (cruft's three-way merge stages what it applied: "M " or "A " rather than " M".)
    changes = {line[3:]: line[:2].strip() for line in status.splitlines()}
    assert changes == {
        ".cruft.json": "M",
        "Dockerfile": "M",
        "app/config/sections.py": "M",
        "compose.yaml": "M",
        "config/config.yaml": "M",
        NEW_SCRIPT: "A",
        ".env": "!!",
        "secrets/": "!!",
    }


def test_the_update_prints_nothing_false_and_no_secret(updated: Update) -> None:
    # cruft renders both releases in scratch directories; the hook says so instead of
    # claiming to have written secrets into the project.
    assert "new random values" not in updated.output
    assert ".env written" not in updated.output
    assert updated.output.count("cruft update: rendered the template at") == 2
    assert "left as they are" in updated.output
    assert not any(value in updated.output for value in updated.before.secret_values())


def test_the_updated_project_passes_its_checks_and_tests(
    updated: Update, postgres: PostgresServer, redis_server: RedisServer
) -> None:
    project = install(Project(updated.project.path, {"python_version": "3.13"}))
    env = project_env(
        TEST_DATABASE_URL=postgres.create_database("updated"),
        TEST_REDIS_URL=redis_server.url_for(0),
        CI="true",
    )

    project.uv("run", "--locked", "ruff", "check")
    project.uv("run", "--locked", "ruff", "format", "--check")
    project.uv("run", "--locked", "mypy")
    result = project.uv("run", "--locked", "pytest", "-q", "-rA", "-p", "no:cacheprovider", env=env)

    assert_only_passes(result.stdout)
    assert "PASSED tests/test_ping.py::test_ping_answers_pong" in result.stdout


def test_a_conflicting_release_shows_the_conflict_and_keeps_the_teams_line(
    template_repo: TemplateRepo, tmp_path: Path
) -> None:
    project, _ = cruft_create(template_repo, tmp_path / "out", "v1.0.0")
    edit_as_a_team(project, template_repo.env)
    before = Kept.of(project)

    result = run(
        venv_tool("cruft"),
        "update",
        "-y",
        "--checkout",
        "v3.0.0",
        cwd=project.path,
        env=template_repo.env,
        check=False,
    )

    config = (project.path / "config" / "config.yaml").read_text(encoding="utf-8")
    output = result.stdout + result.stderr
    assert "<<<<<<<" in config, output
    assert USER_HISTORY_LINE in config
    assert TEMPLATE_HISTORY_LINE in config
    assert Kept.of(project) == before


def test_generation_from_a_git_url_renders_the_tag_asked_for(
    template_repo: TemplateRepo, tmp_path: Path
) -> None:
    bare = tmp_path / "template.git"
    run(
        "git",
        "clone",
        "-q",
        "--bare",
        str(template_repo.path),
        str(bare),
        cwd=tmp_path,
        env=template_repo.env,
    )
    dockerfiles = {}
    for tag in ("v1.0.0", "v2.0.0"):
        output = tmp_path / tag
        run(
            venv_tool("cookiecutter"),
            "--no-input",
            "--checkout",
            tag,
            "-o",
            str(output),
            bare.as_uri(),
            cwd=tmp_path,
            env=template_repo.env,
        )
        dockerfiles[tag] = (output / "ai_agent_api" / "Dockerfile").read_text(encoding="utf-8")

    assert not dockerfiles["v1.0.0"].endswith(DOCKERFILE_LINE)
    assert dockerfiles["v2.0.0"].endswith(DOCKERFILE_LINE)
    assert dockerfiles["v2.0.0"].removesuffix(DOCKERFILE_LINE) == dockerfiles["v1.0.0"]
