"""Every supported combination renders cleanly, and every option changes something real."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable

import yaml

from tests.combinations import SUPPORTED_COMBINATIONS, answers_of
from tests.project import Project
from tests.render.conftest import (
    CHOICES,
    GO_TEMPLATES,
    LICENSE_MARKERS,
    ROOT,
    TEMPLATE_PROJECT,
    leftover_jinja,
    text_files,
)

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


def test_project_dir_is_named_after_the_slug(baked: Project) -> None:
    assert baked.path.is_dir()
    assert baked.path.name == baked.answers["project_slug"]


def test_no_jinja_is_left_in_any_file(baked: Project) -> None:
    leftovers = [
        f"{path.relative_to(baked.path)}: {match.group()!r}"
        for path, text in text_files(baked.path)
        for match in leftover_jinja(path.relative_to(baked.path)).finditer(text)
    ]
    assert leftovers == []


def test_no_jinja_in_generated_python(baked: Project) -> None:
    offenders = [
        str(path.relative_to(baked.path))
        for path in baked.path.rglob("*.py")
        if "{{" in path.read_text() or "{%" in path.read_text()
    ]
    assert offenders == []


def test_structured_files_parse(baked: Project) -> None:
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
        if parse is not None and not path.relative_to(baked.path).is_relative_to(GO_TEMPLATES):
            parse(text)
            checked.append(path.name)
    assert "pyproject.toml" in checked
    assert "config.yaml" in checked


# --- every option changes something real ---------------------------------------------------------


def test_slug_names_the_distribution_and_the_lock(baked: Project) -> None:
    name = baked.answers["project_slug"].replace("_", "-")
    assert baked.load_toml("pyproject.toml")["project"]["name"] == name
    locked = [p for p in baked.load_toml("uv.lock")["package"] if p["name"] == name]
    assert [p["version"] for p in locked] == [baked.answers["version"]]


def test_project_name_titles_the_readme(baked: Project) -> None:
    assert baked.text("README.md").splitlines()[0] == f"# {baked.answers['project_name']}"


def test_metadata_is_in_pyproject(baked: Project) -> None:
    project = baked.load_toml("pyproject.toml")["project"]
    assert project["description"] == baked.answers["description"]
    assert project["version"] == baked.answers["version"]
    assert project["authors"] == [
        {"name": baked.answers["author_name"], "email": baked.answers["author_email"]}
    ]


def test_python_version_is_required_and_pinned(baked: Project) -> None:
    version = baked.answers["python_version"]
    assert baked.load_toml("pyproject.toml")["project"]["requires-python"] == f">={version}"
    assert baked.text(".python-version").splitlines() == [version]


def test_images_and_port_are_in_env_example(baked: Project) -> None:
    redis_image = {"redis": "redis:8-alpine", "valkey": "valkey/valkey:8-alpine"}
    lines = baked.env_example_lines()
    assert f"POSTGRES_IMAGE=postgres:{baked.answers['postgres_version']}-alpine" in lines
    assert f"REDIS_IMAGE={redis_image[baked.answers['redis_flavor']]}" in lines
    assert f"API_PORT={baked.answers['api_port']}" in lines


def test_llm_settings_are_in_config(baked: Project) -> None:
    llm = baked.load_yaml("config/config.yaml")["llm"]
    assert llm["provider"] == baked.answers["llm_provider"]
    assert llm["model"] == baked.answers["llm_model"]


def test_limits_are_in_config(baked: Project) -> None:
    config = baked.load_yaml("config/config.yaml")
    assert config["uploads"]["max_bytes"] == int(baked.answers["max_upload_mb"]) * 1024 * 1024
    assert config["rate_limit"]["requests"] == int(baked.answers["rate_limit_per_minute"])
    assert config["rate_limit"]["window_seconds"] == 60


def test_license_file_and_metadata_agree(baked: Project) -> None:
    text_marker, spdx = LICENSE_MARKERS[baked.answers["license"]]
    license_text = baked.text("LICENSE")
    assert text_marker in license_text
    assert baked.answers["author_name"] in license_text
    assert baked.load_toml("pyproject.toml")["project"]["license"] == spdx
