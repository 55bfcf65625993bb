"""A generated project follows the template's releases with cruft, keeping its edits and secrets.

The project is created from the previous main (releases.PREVIOUS_MAIN), edited and committed
as a team would, its database migrated and given a row, then updated to v2.0.0 (this checkout
and a release's edits: a clean merge) or to v3.0.0 (a change to a line the team also changed).
"""

import stat
import uuid
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
from tests.update.team import (
    USER_README_LINE,
    USER_ROUTER,
    USER_TEST,
    Kept,
    edit_as_a_team,
    without_team_edits,
)

# A conversation the team's database holds before the update, in the previous main's schema.
OLD_ROW_ID = uuid.UUID("5e19d110-0000-4000-8000-000000000001")
OLD_ROW_TITLE = "Stored before the update"
OLD_ROW = (
    "INSERT INTO conversations (id, owner, title, created_at)"
    f" VALUES ('{OLD_ROW_ID}', 'team', '{OLD_ROW_TITLE}', now())"
)


@dataclass(frozen=True)
class Update:
    project: Project
    before: Kept
    after: Kept
    ignored_before: set[str]
    ignored_after: set[str]
    created_output: str
    behind: int
    output: str
    database: str


def ignored(project: Project, env: dict[str, str]) -> set[str]:
    """What git ignores in the project: .env, secrets/, the venv, caches."""
    status = run("git", "status", "--porcelain", "--ignored", cwd=project.path, env=env).stdout
    return {line[3:] for line in status.splitlines() if line.startswith("!! ")}


def database_env(postgres: PostgresServer, database: str) -> dict[str, str]:
    # The test server's password is in its URL; an empty *_FILE outranks the .env line that
    # points at secrets/postgres_password (the password of the project's own compose db).
    return project_env(DATABASE_URL=postgres.url_for(database), DATABASE_PASSWORD_FILE="")


def files_git_sees(path: Path, env: dict[str, str]) -> dict[str, tuple[bytes, bool]]:
    """Each file on disk that git does not ignore: its bytes and whether it is executable."""
    listed = run(
        "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=path, env=env
    ).stdout
    files = {}
    for name in filter(None, listed.split("\0")):
        file = path / name
        # A file cruft deleted may still be in the index: what counts is the disk.
        if file.is_file():
            files[name] = (file.read_bytes(), bool(file.stat().st_mode & stat.S_IXUSR))
    return files


@pytest.fixture(scope="module")
def updated(
    template_repo: TemplateRepo,
    previous_main: str,
    postgres: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Update:
    """A project from the previous main, edited by its team, its database migrated with a row
    in it, updated to v2.0.0 with `cruft update -y`."""
    project, created = cruft_create(
        template_repo, tmp_path_factory.mktemp("clean") / "out", previous_main
    )
    before = Kept.of(project)
    edit_as_a_team(project, template_repo.env)
    # The team's database, migrated by the project as it was (its own venv, its own code).
    database = "previous_main"
    install(Project(project.path, {"python_version": "3.13"}))
    postgres.create_database(database)
    # No __pycache__: that of a module the update deletes would stay, and its folder would show
    # among the ignored files that test_secrets_and_env_are_untouched compares.
    env = {**database_env(postgres, database), "PYTHONDONTWRITEBYTECODE": "1"}
    project.uv("run", "--locked", "alembic", "upgrade", "head", env=env)
    postgres.query(OLD_ROW, database=database)
    ignored_before = ignored(project, template_repo.env)
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
    return Update(
        project,
        before,
        Kept.of(project),
        ignored_before,
        ignored(project, template_repo.env),
        created,
        check.returncode,
        result.stdout + result.stderr,
        database,
    )


@pytest.fixture(scope="module")
def steps_taken(updated: Update, postgres: PostgresServer) -> Project:
    """The steps CHANGELOG.md asks of a project after `cruft update`, as its team takes them.

    `uv sync` (new dependencies), `scripts/init-secrets` (a secret file a release adds; it
    keeps the existing ones) and `uv run alembic upgrade head` (new revisions). A step for the
    team's own code (an import that moved) does not arise: its code imports only fastapi and
    the tests' client fixture.
    """
    project = install(Project(updated.project.path, {"python_version": "3.13"}))
    project.run("scripts/init-secrets")
    env = database_env(postgres, updated.database)
    project.uv("run", "--locked", "alembic", "upgrade", "head", env=env)
    return project


def test_cruft_create_records_the_template_and_the_release(
    updated: Update, template_repo: TemplateRepo, previous_main: str
) -> None:
    # As committed before the update rewrote it.
    state = yaml.safe_load(
        run(
            "git", "show", "HEAD:.cruft.json", cwd=updated.project.path, env=template_repo.env
        ).stdout
    )

    # cruft records a file:// URL as the path it names.
    assert state["template"] == str(template_repo.path)
    assert state["checkout"] == previous_main
    assert state["commit"] == template_repo.git("rev-list", "-n", "1", previous_main).strip()
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


def test_the_project_is_the_release_plus_the_teams_edits(
    updated: Update, template_repo: TemplateRepo, tmp_path: Path
) -> None:
    # What a project generated from v2.0.0 today has: no file the update left behind (a module
    # the template moved or deleted), none it missed, each with the release's bytes and mode.
    run(
        venv_tool("cookiecutter"),
        "--no-input",
        "--checkout",
        "v2.0.0",
        "-o",
        str(tmp_path),
        # cookiecutter tells a git URL by its scheme (git+) or its .git ending.
        f"git+{template_repo.url}",
        cwd=tmp_path,
        env=template_repo.env,
    )
    fresh = tmp_path / "ai_agent_api"
    run("git", "init", "-q", cwd=fresh, env=template_repo.env)
    files = files_git_sees(updated.project.path, template_repo.env)
    leftovers = [name for name in files if name.endswith((".rej", ".orig"))]
    # cruft's record of the release is compared by test_cruft_check_says_behind_then_up_to_date.
    del files[".cruft.json"]

    assert leftovers == []
    assert without_team_edits(files) == files_git_sees(fresh, template_repo.env)


def test_secrets_and_env_are_untouched(updated: Update) -> None:
    assert updated.after == updated.before
    # Nothing git ignores came or went: .env, secrets/ and the venv are still there.
    assert updated.ignored_after == updated.ignored_before
    assert updated.ignored_before == {".env", "secrets/", ".venv/"}


def test_the_update_prints_nothing_false_and_no_secret(updated: Update) -> None:
    # cruft renders both releases in scratch directories; the hook says so instead of
    # claiming to have written secrets into the project.
    assert "new random values" not in updated.output
    assert ".env written" not in updated.output
    assert updated.output.count("cruft update: rendered the template at") == 2
    assert "left as they are" in updated.output
    assert not any(value in updated.output for value in updated.before.secret_values())


def test_the_updated_project_passes_its_checks_and_tests(
    steps_taken: Project, postgres: PostgresServer, redis_server: RedisServer
) -> None:
    project = steps_taken
    env = project_env(
        TEST_DATABASE_URL=postgres.create_database("updated"),
        TEST_REDIS_URL=redis_server.url_for(0),
        CI="true",
    )

    project.uv("run", "--locked", "ruff", "check")
    project.uv("run", "--locked", "ruff", "format", "--check")
    project.uv("run", "--locked", "mypy")
    # The project is a fresh render plus the team's edits, byte for byte (the test above), and
    # a fresh render's whole suite passes inside its image (the compose tier): here the team's
    # own test, and those that read what the edits touch (the layers, config.yaml, the app's
    # routes and health).
    touched = ["tests/test_ping.py", "tests/test_layers.py", "tests/test_config.py"]
    touched += ["tests/test_health.py", "tests/test_ownership.py"]
    result = project.uv(
        "run", "--locked", "pytest", "-q", "-rA", "-p", "no:cacheprovider", *touched, env=env
    )

    assert_only_passes(result.stdout)
    assert "PASSED tests/test_ping.py::test_ping_answers_pong" in result.stdout


def test_the_database_from_before_reaches_the_head_and_keeps_its_row(
    updated: Update, steps_taken: Project, postgres: PostgresServer
) -> None:
    heads = steps_taken.uv("run", "--locked", "alembic", "heads", env=project_env()).stdout
    version = postgres.query("SELECT version_num FROM alembic_version", database=updated.database)
    title = postgres.query(
        f"SELECT title FROM conversations WHERE id = '{OLD_ROW_ID}'", database=updated.database
    )

    assert version == heads.split()[0]
    assert title == OLD_ROW_TITLE


def test_a_conflicting_release_shows_the_conflict_and_keeps_the_teams_line(
    template_repo: TemplateRepo, previous_main: str, tmp_path: Path
) -> None:
    project, _ = cruft_create(template_repo, tmp_path / "out", previous_main)
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
