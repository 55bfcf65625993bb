"""Unit tests of the generation hooks, imported by path exactly as they are stored."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context

from tests.combinations import BAD_ANSWERS, SUPPORTED_COMBINATIONS

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "hooks"
COOKIECUTTER_JSON = ROOT / "cookiecutter.json"
EXAMPLE = """\
# comment mentioning nothing secret
ENVIRONMENT=production
POSTGRES_USER=bot
DATABASE_URL=postgresql://bot@localhost:5432/bot
DATABASE_PASSWORD_FILE=secrets/postgres_password
API_PORT=8000
SECRETS_GID=0
"""
SECRET_NAMES = ("postgres_password", "redis_password", "api_keys", "secret_key")


def load_hook(name: str) -> ModuleType:
    """Import hooks/<name>.py from its path, un-rendered."""
    spec = importlib.util.spec_from_file_location(name, HOOKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")


def rendered_answers(extra_context: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the answers cookiecutter would pass to the hooks, without prompting."""
    context = generate_context(context_file=str(COOKIECUTTER_JSON), extra_context=extra_context)
    return dict(prompt_for_config(context, no_input=True))


def first_error(**overrides: object) -> str:
    """Return the first error line for the default answers with some answers replaced."""
    errors = pre_gen.validate({**rendered_answers(), **overrides})
    assert errors, f"{overrides} was accepted"
    return str(errors[0])


# --- pre_gen_project: the tables agree with cookiecutter.json -----------------------------------


def test_rules_follow_the_questions_in_cookiecutter_json() -> None:
    options = [key for key in json.loads(COOKIECUTTER_JSON.read_text()) if not key.startswith("_")]
    assert list(pre_gen.RULES) == options


def test_choices_table_matches_cookiecutter_json() -> None:
    choices = {
        key: tuple(value)
        for key, value in json.loads(COOKIECUTTER_JSON.read_text()).items()
        if isinstance(value, list) and not key.startswith("_")
    }
    assert choices == pre_gen.CHOICES


# --- pre_gen_project: accepted answers -----------------------------------------------------------


def test_defaults_are_accepted() -> None:
    assert pre_gen.validate(rendered_answers()) == []


@pytest.mark.parametrize("extra_context", SUPPORTED_COMBINATIONS)
def test_supported_combinations_are_accepted(extra_context: dict[str, str]) -> None:
    assert pre_gen.validate(rendered_answers(extra_context)) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("project_name", "Acme Support-Bot"),
        ("project_name", "Café (beta) 2.0: the bot!"),
        ("project_name", "N" * 80),
        ("project_slug", "a"),
        ("project_slug", "bot2_v3"),
        ("project_slug", "b" * 50),
        ("description", ""),
        ("description", "d" * 200),
        ("author_name", "José Müller"),
        ("author_email", "first.last+tag@mail.example.co.uk"),
        ("version", "0"),
        ("version", "10.0.3a1.post2.dev0"),
        ("api_port", "1024"),
        ("api_port", "65535"),
        ("api_port", 8000),
        ("llm_model", "meta-llama/Llama-3.1-8B-Instruct:free"),
        ("llm_model", "m" * 100),
        ("max_upload_mb", "1"),
        ("max_upload_mb", "1024"),
        ("rate_limit_per_minute", "1"),
        ("rate_limit_per_minute", "100000"),
    ],
)
def test_edge_values_are_accepted(option: str, value: object) -> None:
    assert pre_gen.validate({**rendered_answers(), option: value}) == []


@pytest.mark.parametrize(("option", "values"), list(pre_gen.CHOICES.items()))
def test_every_choice_is_accepted(option: str, values: tuple[str, ...]) -> None:
    for value in values:
        assert pre_gen.validate({**rendered_answers(), option: value}) == []


# --- pre_gen_project: rejected answers -----------------------------------------------------------


@pytest.mark.parametrize(("answers", "fragment"), BAD_ANSWERS)
def test_bad_answer_is_the_first_error(answers: dict[str, str], fragment: str) -> None:
    error = first_error(**answers)
    assert fragment in error
    option = next(iter(answers))
    value = answers[option]
    assert error.startswith(f"option {option!r} has value {value!r} (")
    assert f"; allowed: {pre_gen.RULES[option].allowed}" in error
    assert "\n" not in error


@pytest.mark.parametrize("character", sorted('"\\{}'))
@pytest.mark.parametrize("option", ["project_name", "description", "author_name"])
def test_text_rejects_characters_that_break_files(option: str, character: str) -> None:
    error = first_error(**{option: f"A{character}B"})
    assert error.startswith(f"option {option!r} has value {f'A{character}B'!r} (contains ")


@pytest.mark.parametrize("value", ["tab\there", "nul\x00", "bell\x07", "nbsp\u00a0", "cr\r"])
def test_text_rejects_control_characters(value: str) -> None:
    assert "control character" in first_error(project_name=value)


@pytest.mark.parametrize(
    "option", ["project_slug", "author_email", "version", "llm_model", "api_port"]
)
def test_trailing_newline_is_rejected(option: str) -> None:
    value = f"{rendered_answers()[option]}\n"
    assert first_error(**{option: value}).startswith(f"option {option!r} has value {value!r}")


@pytest.mark.parametrize(
    "value", ["08000", "+8000", "8_000", "\uff18\uff10\uff10\uff10", "8000.0", "", "-1"]
)
def test_port_must_be_a_plain_integer(value: str) -> None:
    assert first_error(api_port=value).startswith(f"option 'api_port' has value {value!r}")


@pytest.mark.parametrize("value", ["case", "type", "_", "import", "json", "asyncio", "uv", "pip"])
def test_slug_rejects_keywords_stdlib_and_tools(value: str) -> None:
    assert first_error(project_slug=value).startswith(f"option 'project_slug' has value {value!r}")


def test_missing_option_is_reported() -> None:
    answers = rendered_answers()
    del answers["license"]
    assert pre_gen.validate(answers) == [
        f"option 'license' is missing; allowed: {pre_gen.RULES['license'].allowed}"
    ]


def test_choice_message_lists_the_allowed_values() -> None:
    assert first_error(python_version="3.11") == (
        "option 'python_version' has value '3.11' (not a supported choice); "
        "allowed: one of '3.13', '3.12'"
    )


def test_port_message_names_the_range() -> None:
    assert first_error(api_port="80").endswith("; allowed: an integer from 1024 to 65535")


# --- pre_gen_project: main() ---------------------------------------------------------------------


def set_answers(monkeypatch: pytest.MonkeyPatch, module: ModuleType, **overrides: object) -> None:
    """Make the module's ANSWERS_JSON hold the default answers with some replaced."""
    answers = {**rendered_answers(), **overrides}
    monkeypatch.setattr(module, "ANSWERS_JSON", json.dumps(answers, sort_keys=True, indent=4))


def test_main_exits_1_with_one_line_on_stderr(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_answers(monkeypatch, pre_gen, api_port="80", ci="jenkins")
    with pytest.raises(SystemExit) as exit_info:
        pre_gen.main()
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("ERROR: option 'api_port' has value '80' (out of range); ")
    assert captured.err.count("\n") == 1


def test_main_is_silent_for_good_answers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_answers(monkeypatch, pre_gen)
    pre_gen.main()
    assert capsys.readouterr() == ("", "")


# --- both hooks: the only Jinja is the answers line, and no answer can break out of it -----------


@pytest.mark.parametrize("name", ["pre_gen_project", "post_gen_project"])
def test_hook_holds_one_jinja_expression_and_no_tags(name: str) -> None:
    source = (HOOKS / f"{name}.py").read_text()
    assert source.count("{{") == 1
    assert 'ANSWERS_JSON = r"""{{ cookiecutter | jsonify }}"""\n' in source
    assert "{%" not in source


@pytest.mark.parametrize("name", ["pre_gen_project", "post_gen_project"])
def test_rendered_hook_survives_hostile_answers(name: str) -> None:
    hostile = {**rendered_answers(), "project_name": '"""\\"; raise SystemExit(3) #\n\\', "x": ""}
    context = {"cookiecutter": hostile}
    source = (HOOKS / f"{name}.py").read_text()
    rendered = create_env_with_context(context).from_string(source).render(**context)
    namespace: dict[str, Any] = {"__name__": "rendered_hook"}
    exec(compile(rendered, name, "exec"), namespace)
    assert json.loads(namespace["ANSWERS_JSON"]) == hostile


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
    assert sorted(post_gen.unselected_paths({"ci": ci})) == removed


def test_optional_paths_name_real_choices() -> None:
    for option, value in post_gen.OPTIONAL_PATHS:
        assert value in pre_gen.CHOICES[option]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A minimal generated project with every optional file and a .env.example."""
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yml").write_text("on: push\n")
    (tmp_path / ".gitlab-ci.yml").write_text("stages: [test]\n")
    (tmp_path / ".env.example").write_text(EXAMPLE)
    return tmp_path


@pytest.mark.parametrize(
    ("ci", "kept"),
    [("github", [".github"]), ("gitlab", [".gitlab-ci.yml"]), ("none", [])],
)
def test_remove_unselected_keeps_only_the_chosen_ci(
    project: Path, ci: str, kept: list[str]
) -> None:
    post_gen.remove_unselected(project, {"ci": ci})
    present = sorted(path.name for path in project.iterdir() if path.name != ".env.example")
    assert present == kept


def test_remove_path_tolerates_a_missing_path(tmp_path: Path) -> None:
    post_gen.remove_path(tmp_path / "absent")


# --- post_gen_project: .env and secrets/ ------------------------------------------------------


def env_values(text: str) -> dict[str, str]:
    """Parse KEY=VALUE lines."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_env_is_for_development_with_the_group_id_and_keeps_other_lines() -> None:
    env = post_gen.env_from_example(EXAMPLE, secrets_gid=1234).splitlines()
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
    assert post_gen.write_env(project, 4242) is True
    env = project / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert env_values(env.read_text())["SECRETS_GID"] == "4242"


def test_write_env_keeps_an_existing_env(project: Path) -> None:
    (project / ".env").write_text("SECRET_KEY=mine\n")
    assert post_gen.write_env(project, 4242) is False
    assert (project / ".env").read_text() == "SECRET_KEY=mine\n"


def test_write_env_fails_loudly_without_an_example(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        post_gen.write_env(tmp_path, 4242)
    assert not (tmp_path / ".env").exists()


@pytest.mark.usefixtures("open_umask")
def test_write_secrets_creates_private_random_files(tmp_path: Path) -> None:
    written = post_gen.write_secrets(tmp_path)

    directory = tmp_path / "secrets"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert sorted(written) == sorted([*SECRET_NAMES, "openai_api_key"])
    values = [(directory / name).read_text() for name in SECRET_NAMES]
    assert len(set(values)) == len(values)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", value) for value in values)
    assert (directory / "openai_api_key").read_text() == ""
    modes = {stat.S_IMODE((directory / name).stat().st_mode) for name in written}
    assert modes == {0o640}


def test_write_secrets_keeps_existing_files_and_differs_between_runs(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    post_gen.write_secrets(first)
    post_gen.write_secrets(second)
    (first / "secrets" / "api_keys").write_text("mine")

    assert post_gen.write_secrets(first) == []
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
        "secret_key\nsecrets/openai_api_key is empty: paste your key there to use it\n"
    ) in out
    for step in (
        "cd support_bot",
        "docker compose up -d --wait",
        "/health",
        "uv sync && uv run alembic upgrade head",
        "uv run python -m app --factory app.main:create_app --reload",
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


def test_machine_values_of_a_kept_env_are_not_differences() -> None:
    kept = "ENVIRONMENT=production\nSECRETS_GID=1000\n# API_PORT=1\nAPI_PORT=8000\n"

    assert post_gen.env_differences(kept, EXAMPLE.replace("POSTGRES_USER=bot\n", "")) == [
        "DATABASE_URL=(missing) in .env, postgresql://bot@localhost:5432/bot from the answers",
        "DATABASE_PASSWORD_FILE=(missing) in .env, secrets/postgres_password from the answers",
    ]


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


def test_scratch_note_names_the_commit_and_what_is_skipped() -> None:
    note = post_gen.scratch_note("0123456789abcdef0123")

    assert "0123456789ab " in note
    assert "secrets/, .env and backups/" in note
    assert "new random values" not in note


@pytest.mark.parametrize(("rootless", "expected"), [(True, 0), (False, 1000), (None, 1000)])
def test_secrets_gid_is_group_0_only_on_a_rootless_engine(
    rootless: bool | None, expected: int
) -> None:
    assert post_gen.secrets_gid(rootless, 1000) == expected


def _fake_docker(directory: Path, script: str) -> None:
    docker = directory / "docker"
    docker.write_text(f"#!/bin/sh\n{script}\n")
    docker.chmod(0o755)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("""echo '["name=seccomp,profile=default","name=rootless"]'""", True),
        ("""echo '["name=seccomp,profile=default"]'""", False),
        ("echo 'Cannot connect to the Docker daemon' >&2; exit 1", None),
    ],
)
def test_engine_mode_comes_from_docker_info(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, expected: bool | None
) -> None:
    # A stand-in docker CLI with docker info's answer for each kind of engine.
    _fake_docker(tmp_path, script)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert post_gen.engine_is_rootless() is expected


def test_engine_mode_is_unknown_without_a_docker_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    assert post_gen.engine_is_rootless() is None


def test_the_docker_info_format_is_a_go_template() -> None:
    assert post_gen.SECURITY_OPTIONS_FORMAT == "{{json .SecurityOptions}}"
