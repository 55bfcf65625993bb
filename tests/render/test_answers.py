""".env and secrets/ as generated; bad answers refused before writing; real names intact."""

from __future__ import annotations

import json
import shutil
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config

from tests.combinations import BAD_ANSWERS
from tests.project import Project, render
from tests.render.conftest import (
    CHOICES,
    COOKIECUTTER_JSON,
    GO_TEMPLATES,
    ROOT,
    TEMPLATE_PROJECT,
)

# --- .env ----------------------------------------------------------------------------------------


def test_env_example_holds_no_secret(baked: Project) -> None:
    example = baked.text(".env.example")
    for name in ("postgres_password", "redis_password", "api_keys", "secret_key"):
        assert f"secrets/{name}" in example
    assert "PASSWORD=" not in example


def test_env_is_private(baked: Project) -> None:
    env = baked.path / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_env_has_the_same_keys_as_the_example(baked: Project) -> None:
    def keys(text: str) -> list[str]:
        return [line.split("=", 1)[0] for line in text.splitlines() if "=" in line]

    assert keys(baked.text(".env")) == keys(baked.text(".env.example"))
    assert "ENVIRONMENT=development" in baked.text(".env").splitlines()


def test_secrets_are_private_files_ignored_by_git_and_docker(baked: Project) -> None:
    directory = baked.path / "secrets"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert {p.name for p in directory.iterdir()} == {
        "postgres_password",
        "redis_password",
        "api_keys",
        "secret_key",
        "openai_api_key",
        "anthropic_api_key",
        "gemini_api_key",
    }
    for ignore_file in (".gitignore", ".dockerignore"):
        assert {".env", "secrets/"} <= set(baked.text(ignore_file).splitlines())


def test_two_bakes_get_different_secrets(cookies: Any) -> None:
    first, second = (cookies.bake(template=str(ROOT)) for _ in range(2))
    assert first.exit_code == second.exit_code == 0
    first_key = (first.project_path / "secrets" / "secret_key").read_text()
    second_key = (second.project_path / "secrets" / "secret_key").read_text()
    assert first_key != second_key


# --- rejected answers ----------------------------------------------------------------------------


def replay_bake(tmp_path: Path, answers: dict[str, str], output_dir: Path) -> Exception | None:
    """Render through a replay file, which (unlike extra_context) does not check choices.

    cookiecutter itself raises ValueError for an extra_context choice outside the list, so a
    replay file is how an unsupported choice reaches the pre-generation hook.
    """
    context = generate_context(context_file=str(COOKIECUTTER_JSON))
    replay = tmp_path / "replay" / "bad.json"
    replay.parent.mkdir()
    answers = {**prompt_for_config(context, no_input=True), **answers}
    replay.write_text(json.dumps({"cookiecutter": answers}))
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {"cookiecutters_dir": str(tmp_path / "cc"), "replay_dir": str(tmp_path / "cc-replay")}
        )
    )
    try:
        cookiecutter(
            str(ROOT), replay=str(replay), output_dir=str(output_dir), config_file=str(config)
        )
    except Exception as error:
        return error
    return None


@pytest.mark.parametrize(("answers", "fragment"), BAD_ANSWERS)
def test_bad_answer_is_refused_before_writing(
    answers: dict[str, str],
    fragment: str,
    cookies: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    if CHOICES.keys() & answers.keys():
        output_dir = tmp_path / "out"
        output_dir.mkdir()
        exception = replay_bake(tmp_path, answers, output_dir)
    else:
        result = cookies.bake(extra_context=answers, template=str(ROOT))
        assert result.exit_code != 0
        exception = result.exception
        output_dir = tmp_path / "cookies" / "bake00"  # where pytest-cookies rendered it
    assert isinstance(exception, FailedHookException)
    error_lines = [line for line in capfd.readouterr().err.splitlines() if "ERROR: " in line]
    assert fragment in error_lines[0]
    assert error_lines[0].startswith("ERROR: option ")
    # The hook ran after cookiecutter created the project directory, which it must have removed.
    assert output_dir.is_dir()
    assert list(output_dir.iterdir()) == []


# Free text as real teams write it: every character the hook accepts that means something in
# one of the file formats it lands in.
REAL_NAMES = {
    "project_name": "O'Brien's Q&A #1 <Bot> Café",
    "description": "Answers Q&A for C# & F# teams; it's 100% <safe>, `quoted` and $HOME-free | ok",
    "author_name": "Seán O'Brien & Co. #2",
}


def test_real_names_land_intact_in_every_file(tmp_path: Path) -> None:
    project = render(tmp_path, REAL_NAMES)
    root = project.path
    name, description, author = (
        REAL_NAMES[k] for k in ("project_name", "description", "author_name")
    )

    files = [
        path
        for path in root.rglob("*")
        if path.is_file()
        and "secrets" not in path.parts
        and not path.relative_to(root).is_relative_to(GO_TEMPLATES)
    ]
    for path in files:
        text = path.read_text(encoding="utf-8")
        if path.suffix in {".yaml", ".yml"}:
            yaml.safe_load(text)
        elif path.suffix == ".json":
            json.loads(text)
        elif path.suffix == ".toml" or path.name == "uv.lock":
            tomllib.loads(text)
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    readme = (root / "README.md").read_text().splitlines()

    assert root.name == "o_brien_s_q_a_1_bot_cafe"
    assert pyproject["description"] == description
    assert pyproject["authors"][0]["name"] == author
    assert readme[0] == f"# {name}"
    assert readme[2] == description
    assert (root / "compose.yaml").read_text().splitlines()[0] == f"# {name}: the whole stack."
    assert (root / "config" / "config.yaml").read_text().splitlines()[0].endswith(f"{name}.")
    assert "Copyright (c) " in (root / "LICENSE").read_text()
    assert author in (root / "LICENSE").read_text()


@pytest.mark.parametrize(
    ("name", "slug"),
    [("Café Agent", "cafe_agent"), ("Ärger-Bot", "arger_bot"), ("Ñandú  API v2", "nandu_api_v2")],
)
def test_the_slug_is_transliterated_from_names_with_accents(
    tmp_path: Path, name: str, slug: str
) -> None:
    project = render(tmp_path, {"project_name": name})

    assert project.path.name == slug
    assert (project.path / "README.md").read_text().splitlines()[0] == f"# {name}"


def test_code_scripts_and_tests_are_copied_without_rendering(tmp_path: Path) -> None:
    # A copy of the template with a file whose braces belong to another tool, in each such folder.
    template = tmp_path / "template"
    for folder in ("hooks", "templates"):
        shutil.copytree(ROOT / folder, template / folder)
    shutil.copy(COOKIECUTTER_JSON, template / "cookiecutter.json")
    shutil.copytree(
        TEMPLATE_PROJECT,
        template / TEMPLATE_PROJECT.name,
        ignore=shutil.ignore_patterns("__pycache__", ".venv"),
    )
    foreign = "value: {{ .Values.image }} {% raw %} ${{ github.sha }}\n"
    unrendered = json.loads(COOKIECUTTER_JSON.read_text())["_copy_without_render"]
    for directory in unrendered:
        (template / TEMPLATE_PROJECT.name / directory / "foreign.txt").write_text(foreign)

    # Every deploy target, so that the chart's templates folder is kept.
    everything = {"deploy_targets": "compose+swarm+helm"}
    out = Path(
        cookiecutter(
            str(template), no_input=True, output_dir=str(tmp_path / "out"), extra_context=everything
        )
    )

    assert sorted(unrendered) == ["app", "deploy/helm/templates", "scripts", "tests"]
    assert [(out / d / "foreign.txt").read_text() for d in unrendered] == [foreign] * 4
    assert (out / "app" / "main.py").read_bytes() == (TEMPLATE_PROJECT / "app/main.py").read_bytes()
