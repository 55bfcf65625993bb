"""post_gen_project: optional files, .env and secrets/, and what it prints."""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.render.hooks import EXAMPLE, WRITER, init_secrets, post_gen, pre_gen, set_answers

SECRET_NAMES = init_secrets.GENERATED_SECRETS
PROVIDER_KEYS = ("openai_api_key", "anthropic_api_key", "gemini_api_key")


# --- post_gen_project: optional files ------------------------------------------------------------


@pytest.mark.parametrize(
    ("ci", "removed"),
    [
        ("github", [".gitlab-ci.yml", "renovate.json"]),
        ("gitlab", [".github"]),
        ("none", [".github", ".gitlab-ci.yml", "renovate.json"]),
    ],
)
def test_unselected_paths(ci: str, removed: list[str]) -> None:
    answers = {"ci": ci, "deploy_targets": "compose+swarm+helm"}
    assert sorted(post_gen.unselected_paths(answers)) == removed


SWARM_ONLY = ["deploy/stack.yaml", "scripts/deploy-stack"]


@pytest.mark.parametrize(
    ("targets", "removed"),
    [
        ("compose", ["deploy/helm", "deploy/stack.yaml", "docs/deploy.md", "scripts/deploy-stack"]),
        ("compose+swarm", ["deploy/helm"]),
        # docs/deploy.md serves both targets: it stays while either is chosen.
        ("compose+helm", SWARM_ONLY),
        ("compose+swarm+helm", []),
    ],
)
def test_unselected_deploy_targets(targets: str, removed: list[str]) -> None:
    paths = post_gen.unselected_paths({"ci": "github", "deploy_targets": targets})
    assert sorted(paths) == sorted([".gitlab-ci.yml", "renovate.json", *removed])


def test_optional_paths_name_real_choices() -> None:
    for option, value in post_gen.OPTIONAL_PATHS:
        # A value is a whole answer ("github") or one "+" part of one ("helm").
        assert any(value in choice.split("+") for choice in pre_gen.CHOICES[option])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A minimal generated project with every optional file and a .env.example."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    (tmp_path / ".gitlab-ci.yml").write_text("stages: [test]\n")
    (tmp_path / ".env.example").write_text(EXAMPLE)
    (tmp_path / "scripts").mkdir()
    shutil.copy2(WRITER, tmp_path / "scripts" / WRITER.name)
    return tmp_path


@pytest.mark.parametrize(
    ("ci", "kept"),
    [("github", [".github"]), ("gitlab", [".gitlab-ci.yml"]), ("none", [])],
)
def test_remove_unselected_keeps_only_the_chosen_ci(
    project: Path, ci: str, kept: list[str]
) -> None:
    post_gen.remove_unselected(project, {"ci": ci})
    fixed = {".env.example", "scripts"}
    present = sorted(path.name for path in project.iterdir() if path.name not in fixed)
    assert present == kept


def test_remove_path_tolerates_a_missing_path(tmp_path: Path) -> None:
    post_gen.remove_path(tmp_path / "absent")


# --- post_gen_project: .env and secrets/ ------------------------------------------------------


def env_values(text: str) -> dict[str, str]:
    """Parse KEY=VALUE lines."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_env_is_for_development_with_the_group_id_and_keeps_other_lines() -> None:
    env = init_secrets.env_from_example(EXAMPLE, secrets_gid=1234).splitlines()
    example = EXAMPLE.splitlines()

    assert "ENVIRONMENT=development" in env
    assert "SECRETS_GID=1234" in env
    unchanged = [line for line in example if not line.startswith(("ENVIRONMENT=", "SECRETS_GID="))]
    assert all(line in env for line in unchanged)
    assert len(env) == len(example)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Clear the umask so only the mode given at creation limits the permissions."""
    previous = os.umask(0)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("open_umask")
def test_write_env_creates_a_private_file(project: Path) -> None:
    assert init_secrets.write_env(project, 4242) is True
    env = project / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert env_values(env.read_text())["SECRETS_GID"] == "4242"


def test_write_env_keeps_an_existing_env(project: Path) -> None:
    (project / ".env").write_text("SECRET_KEY=mine\n")
    assert init_secrets.write_env(project, 4242) is False
    assert (project / ".env").read_text() == "SECRET_KEY=mine\n"


def test_write_env_fails_loudly_without_an_example(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        init_secrets.write_env(tmp_path, 4242)
    assert not (tmp_path / ".env").exists()


@pytest.mark.usefixtures("open_umask")
def test_write_secrets_creates_private_random_files(tmp_path: Path) -> None:
    written = init_secrets.write_secrets(tmp_path)

    directory = tmp_path / "secrets"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(written) == sorted([*SECRET_NAMES, *PROVIDER_KEYS])
    values = [(directory / name).read_text() for name in SECRET_NAMES]
    assert len(set(values)) == len(values)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", value) for value in values)
    assert [(directory / name).read_text() for name in PROVIDER_KEYS] == ["", "", ""]
    modes = {stat.S_IMODE((directory / name).stat().st_mode) for name in written}
    assert modes == {0o640}


def test_write_secrets_keeps_existing_files_and_differs_between_runs(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    init_secrets.write_secrets(first)
    init_secrets.write_secrets(second)
    (first / "secrets" / "api_keys").write_text("mine")

    assert init_secrets.write_secrets(first) == []
    assert (first / "secrets" / "api_keys").read_text() == "mine"
    assert (first / "secrets" / "secret_key").read_text() != (
        second / "secrets" / "secret_key"
    ).read_text()


# --- post_gen_project: main() --------------------------------------------------------------------


def test_main_finishes_the_project(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_answers(monkeypatch, post_gen, ci="gitlab", project_slug="support_bot")
    monkeypatch.chdir(project)
    post_gen.main()
    assert not (project / ".github").exists()
    assert (project / ".gitlab-ci.yml").exists()
    assert (project / "secrets" / "api_keys").read_text()
    out = capsys.readouterr().out
    assert (
        "secrets/ holds 4 new random values: postgres_password, redis_password, api_keys, "
        "secret_key\nEmpty, for the model provider's key you use: secrets/openai_api_key, "
        "secrets/anthropic_api_key, secrets/gemini_api_key\n"
    ) in out
    for step in (
        "cd support_bot",
        "docker compose up -d --wait",
        "/health",
        "uv sync && uv run alembic upgrade head",
        "uv run python -m app --reload",
        "TEST_DATABASE_URL",
    ):
        assert step in out


def test_main_reports_a_kept_env(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / ".env").write_text("KEEP=1\n")
    set_answers(monkeypatch, post_gen)
    monkeypatch.chdir(project)
    post_gen.main()
    assert "left unchanged" in capsys.readouterr().out
    assert (project / ".env").read_text() == "KEEP=1\n"


def test_a_kept_env_out_of_step_with_the_answers_is_named_and_left_alone(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_answers(monkeypatch, post_gen)
    monkeypatch.chdir(project)
    post_gen.main()
    first_out = capsys.readouterr().out
    kept = (project / ".env").read_text()
    # A second render (cookiecutter -f) with another port and user.
    (project / ".env.example").write_text(
        EXAMPLE.replace("API_PORT=8000", "API_PORT=8080").replace("USER=bot", "USER=agent")
    )
    post_gen.main()
    out = capsys.readouterr().out

    assert "WARNING" not in first_out
    assert (
        "WARNING: .env was kept (it may hold your own edits) but differs from these answers:\n"
        "  POSTGRES_USER=bot in .env, agent from the answers\n"
        "  API_PORT=8000 in .env, 8080 from the answers\n"
    ) in out
    assert (project / ".env").read_text() == kept


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([b"/usr/bin/python3", b"/home/me/.venv/bin/cruft", b"update", b"-y"], True),
        ([b"python", b"-m", b"cruft", b"update"], True),
        ([b"/usr/bin/python3", b"/home/me/.venv/bin/cruft", b"create", b"https://x/update"], False),
        ([b"/usr/bin/python3", b"/home/me/.venv/bin/cookiecutter", b"."], False),
    ],
)
def test_cruft_update_is_told_from_its_command_line(
    tmp_path: Path, args: list[bytes], expected: bool
) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"\0".join(args) + b"\0")

    assert post_gen.cruft_update_parent(cmdline) is expected


def test_cruft_update_is_unknown_without_proc(tmp_path: Path) -> None:
    assert post_gen.cruft_update_parent(tmp_path / "absent") is None


def test_an_update_render_without_a_target_names_its_files_and_the_command() -> None:
    note = post_gen.targets_note({"deploy_targets": "compose+helm"})

    assert "deploy_targets is 'compose+helm': this render has no deploy/stack.yaml, " in note
    assert "scripts/deploy-stack.\n" in note
    assert """--variables-to-update '{"deploy_targets": "compose+swarm+helm"}'""" in note
    assert post_gen.targets_note({"deploy_targets": "compose+swarm+helm"}) == ""


def test_scratch_note_names_the_commit_and_what_is_skipped() -> None:
    note = post_gen.scratch_note("0123456789abcdef0123")

    assert "0123456789ab " in note
    assert "secrets/, .env and backups/" in note
    assert "new random values" not in note
