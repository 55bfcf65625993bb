"""Render the template for every supported combination and inspect the generated files."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException
from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config

from tests.combinations import BAD_ANSWERS, SUPPORTED_COMBINATIONS, answers_of
from tests.project import render

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PROJECT = ROOT / "{{cookiecutter.project_slug}}"
COOKIECUTTER_JSON = ROOT / "cookiecutter.json"
CHOICES = {
    key: value
    for key, value in json.loads(COOKIECUTTER_JSON.read_text()).items()
    if isinstance(value, list) and not key.startswith("_")
}
# Any unrendered expression, tag or comment contains one of these openers. "${{" is left alone:
# it is a GitHub Actions expression. A bare "}}" is not searched for: it closes nested dicts in
# Python and JSON, and a leftover expression is already caught by its "{{".
LEFTOVER_JINJA = re.compile(r"(?<!\$)\{\{|\{%|%\}|(?<!\$)\{#")
LICENSE_MARKERS = {
    "MIT": ("MIT License", "MIT"),
    "Apache-2.0": ("Apache License", "Apache-2.0"),
    "Proprietary": ("All rights reserved", "LicenseRef-Proprietary"),
}


@dataclass(frozen=True)
class Baked:
    """A project rendered from one supported combination, and the answers that produced it."""

    path: Path
    answers: dict[str, Any]

    def text(self, relative: str) -> str:
        return (self.path / relative).read_text(encoding="utf-8")

    def load_toml(self, relative: str) -> dict[str, Any]:
        return tomllib.loads(self.text(relative))

    def load_yaml(self, relative: str) -> Any:
        return yaml.safe_load(self.text(relative))

    def env_example_lines(self) -> list[str]:
        return self.text(".env.example").splitlines()


@pytest.fixture(scope="module", params=SUPPORTED_COMBINATIONS)
def baked(request: pytest.FixtureRequest, cookies_session: Any) -> Baked:
    """Bake each supported combination once per module; the tests only read the result."""
    result = cookies_session.bake(extra_context=request.param, template=str(ROOT))
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    return Baked(path=result.project_path, answers=dict(result.context))


def text_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Yield every file under root that decodes as UTF-8, with its text."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue


# --- the combinations themselves -----------------------------------------------------------------


def test_supported_combinations_use_every_choice() -> None:
    used = {
        (option, answers_of(combination).get(option, values[0]))
        for combination in SUPPORTED_COMBINATIONS
        for option, values in CHOICES.items()
    }
    assert {(option, value) for option, values in CHOICES.items() for value in values} <= used


def test_default_combination_comes_first() -> None:
    assert SUPPORTED_COMBINATIONS[0].values == ({},)
    assert SUPPORTED_COMBINATIONS[0].id == "default"


# --- the template's own files --------------------------------------------------------------------


def test_template_python_files_hold_no_jinja() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in TEMPLATE_PROJECT.rglob("*.py")
        if "{{" in path.read_text() or "{%" in path.read_text()
    ]
    assert offenders == []


# --- every supported combination renders cleanly ------------------------------------------------


def test_project_dir_is_named_after_the_slug(baked: Baked) -> None:
    assert baked.path.is_dir()
    assert baked.path.name == baked.answers["project_slug"]


def test_no_jinja_is_left_in_any_file(baked: Baked) -> None:
    leftovers = [
        f"{path.relative_to(baked.path)}: {match.group()!r}"
        for path, text in text_files(baked.path)
        for match in LEFTOVER_JINJA.finditer(text)
    ]
    assert leftovers == []


def test_no_jinja_in_generated_python(baked: Baked) -> None:
    offenders = [
        str(path.relative_to(baked.path))
        for path in baked.path.rglob("*.py")
        if "{{" in path.read_text() or "{%" in path.read_text()
    ]
    assert offenders == []


def test_structured_files_parse(baked: Baked) -> None:
    parsers: dict[str, Callable[[str], object]] = {
        ".toml": tomllib.loads,
        ".lock": tomllib.loads,
        ".yaml": lambda text: list(yaml.safe_load_all(text)),
        ".yml": lambda text: list(yaml.safe_load_all(text)),
        ".json": json.loads,
    }
    checked = []
    for path, text in text_files(baked.path):
        parse = parsers.get(path.suffix)
        if parse is not None:
            parse(text)
            checked.append(path.name)
    assert "pyproject.toml" in checked
    assert "config.yaml" in checked


# --- every option changes something real ---------------------------------------------------------


def test_slug_names_the_distribution_and_the_lock(baked: Baked) -> None:
    name = baked.answers["project_slug"].replace("_", "-")
    assert baked.load_toml("pyproject.toml")["project"]["name"] == name
    locked = [p for p in baked.load_toml("uv.lock")["package"] if p["name"] == name]
    assert [p["version"] for p in locked] == [baked.answers["version"]]


def test_project_name_titles_the_readme(baked: Baked) -> None:
    assert baked.text("README.md").splitlines()[0] == f"# {baked.answers['project_name']}"


def test_metadata_is_in_pyproject(baked: Baked) -> None:
    project = baked.load_toml("pyproject.toml")["project"]
    assert project["description"] == baked.answers["description"]
    assert project["version"] == baked.answers["version"]
    assert project["authors"] == [
        {"name": baked.answers["author_name"], "email": baked.answers["author_email"]}
    ]


def test_python_version_is_required_and_pinned(baked: Baked) -> None:
    version = baked.answers["python_version"]
    assert baked.load_toml("pyproject.toml")["project"]["requires-python"] == f">={version}"
    assert baked.text(".python-version").splitlines() == [version]


def test_images_and_port_are_in_env_example(baked: Baked) -> None:
    redis_image = {"redis": "redis:8-alpine", "valkey": "valkey/valkey:8-alpine"}
    lines = baked.env_example_lines()
    assert f"POSTGRES_IMAGE=postgres:{baked.answers['postgres_version']}-alpine" in lines
    assert f"REDIS_IMAGE={redis_image[baked.answers['redis_flavor']]}" in lines
    assert f"API_PORT={baked.answers['api_port']}" in lines


def test_llm_settings_are_in_config(baked: Baked) -> None:
    llm = baked.load_yaml("config/config.yaml")["llm"]
    assert llm["provider"] == baked.answers["llm_provider"]
    assert llm["model"] == baked.answers["llm_model"]


def test_limits_are_in_config(baked: Baked) -> None:
    config = baked.load_yaml("config/config.yaml")
    assert config["uploads"]["max_bytes"] == int(baked.answers["max_upload_mb"]) * 1024 * 1024
    assert config["rate_limit"]["requests"] == int(baked.answers["rate_limit_per_minute"])
    assert config["rate_limit"]["window_seconds"] == 60


def test_only_the_chosen_ci_is_shipped(baked: Baked) -> None:
    ci = baked.answers["ci"]
    assert (baked.path / ".github" / "workflows" / "ci.yml").is_file() == (ci == "github")
    assert (baked.path / ".github" / "dependabot.yml").is_file() == (ci == "github")
    assert (baked.path / ".github").exists() == (ci == "github")
    assert (baked.path / ".gitlab-ci.yml").is_file() == (ci == "gitlab")
    assert (baked.path / "renovate.json").is_file() == (ci == "gitlab")


# File -> the schema check-jsonschema ships for it (validated offline).
SCHEMAS = {
    ".github/workflows/ci.yml": "vendor.github-workflows",
    ".github/dependabot.yml": "vendor.dependabot",
    ".gitlab-ci.yml": "vendor.gitlab-ci",
    "renovate.json": "vendor.renovate",
    "compose.yaml": "vendor.compose-spec",
    "compose.override.yaml": "vendor.compose-spec",
}


def test_ci_dependency_and_compose_files_match_their_published_schemas(baked: Baked) -> None:
    check = Path(sys.executable).with_name("check-jsonschema")
    present = {name: schema for name, schema in SCHEMAS.items() if (baked.path / name).is_file()}
    assert "compose.yaml" in present
    for name, schema in present.items():
        result = subprocess.run(
            [str(check), "--builtin-schema", schema, name],
            cwd=baked.path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_ci_runs_the_pre_commit_hooks_the_audit_and_the_template_check(baked: Baked) -> None:
    ci = baked.answers["ci"]
    if ci == "none":
        # No CI to run them: the same checks still run at every commit.
        assert (baked.path / ".pre-commit-config.yaml").is_file()
        return
    text = baked.text(".github/workflows/ci.yml" if ci == "github" else ".gitlab-ci.yml")
    assert "uv run --locked pre-commit run --all-files" in text
    assert "uv run --locked pip-audit --strict --disable-pip --requirement" in text
    assert "uv run --locked cruft check" in text
    assert "CRUFT_CHECK_STRICT" in text
    if ci == "github":
        template_job = baked.load_yaml(".github/workflows/ci.yml")["jobs"]["template"]
        # Rendered from a {% raw %} block: the expression is GitHub's, not cookiecutter's.
        assert template_job["continue-on-error"] == "${{ vars.CRUFT_CHECK_STRICT != 'true' }}"


def test_dependency_updates_cover_the_lock_the_images_and_the_ci(baked: Baked) -> None:
    ci = baked.answers["ci"]
    if ci == "github":
        updates = baked.load_yaml(".github/dependabot.yml")["updates"]
        ecosystems = {update["package-ecosystem"] for update in updates}
        assert ecosystems == {"uv", "docker", "docker-compose", "github-actions"}
        assert {update["directory"] for update in updates} == {"/"}
    elif ci == "gitlab":
        renovate = json.loads(baked.text("renovate.json"))
        assert set(renovate["enabledManagers"]) == {
            "pep621",
            "dockerfile",
            "docker-compose",
            "gitlabci",
        }
    # What those managers read is where they look for it.
    for name in ("uv.lock", "pyproject.toml", "Dockerfile", "compose.yaml"):
        assert (baked.path / name).is_file()


def test_pre_commit_hooks_are_local_and_run_from_the_lock(baked: Baked) -> None:
    config = baked.load_yaml(".pre-commit-config.yaml")
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]

    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    assert {"ruff-format", "ruff", "mypy", "check-merge-conflict"} <= {hook["id"] for hook in hooks}
    assert all(hook["entry"].startswith("uv ") for hook in hooks)


def test_cruft_never_updates_secrets_env_or_backups(baked: Baked) -> None:
    pyproject = baked.load_toml("pyproject.toml")
    assert pyproject["tool"]["cruft"]["skip"] == ["secrets", ".env", "backups"]


def test_license_file_and_metadata_agree(baked: Baked) -> None:
    text_marker, spdx = LICENSE_MARKERS[baked.answers["license"]]
    license_text = baked.text("LICENSE")
    assert text_marker in license_text
    assert baked.answers["author_name"] in license_text
    assert baked.load_toml("pyproject.toml")["project"]["license"] == spdx


# --- .env ----------------------------------------------------------------------------------------


def test_env_example_holds_no_secret(baked: Baked) -> None:
    example = baked.text(".env.example")
    for name in ("postgres_password", "redis_password", "api_keys", "secret_key"):
        assert f"secrets/{name}" in example
    assert "PASSWORD=" not in example


def test_env_is_private(baked: Baked) -> None:
    env = baked.path / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_env_has_the_same_keys_as_the_example(baked: Baked) -> None:
    def keys(text: str) -> list[str]:
        return [line.split("=", 1)[0] for line in text.splitlines() if "=" in line]

    assert keys(baked.text(".env")) == keys(baked.text(".env.example"))
    assert "ENVIRONMENT=development" in baked.text(".env").splitlines()


def test_secrets_are_private_files_ignored_by_git_and_docker(baked: Baked) -> None:
    directory = baked.path / "secrets"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert {p.name for p in directory.iterdir()} == {
        "postgres_password",
        "redis_password",
        "api_keys",
        "secret_key",
        "openai_api_key",
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

    files = [path for path in root.rglob("*") if path.is_file() and "secrets" not in path.parts]
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

    out = Path(cookiecutter(str(template), no_input=True, output_dir=str(tmp_path / "out")))

    assert sorted(unrendered) == ["app", "scripts", "tests"]
    assert [(out / d / "foreign.txt").read_text() for d in unrendered] == [foreign] * 3
    assert (out / "app" / "main.py").read_bytes() == (TEMPLATE_PROJECT / "app/main.py").read_bytes()
