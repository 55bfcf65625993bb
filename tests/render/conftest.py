"""The render tier's shared pieces: each supported combination baked once, and file helpers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.mark.structures import ParameterSet

from tests.combinations import SUPPORTED_COMBINATIONS, answers_of
from tests.project import Project

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PROJECT = ROOT / "{{cookiecutter.project_slug}}"
COOKIECUTTER_JSON = ROOT / "cookiecutter.json"
CHOICES = {
    key: value
    for key, value in json.loads(COOKIECUTTER_JSON.read_text()).items()
    if isinstance(value, list) and not key.startswith("_")
}
DEFAULT_TARGETS = CHOICES["deploy_targets"][0]
# Any unrendered expression, tag or comment contains one of these openers. "${{" is left alone:
# it is a GitHub Actions expression. A bare "}}" is not searched for: it closes nested dicts in
# Python and JSON, and a leftover expression is already caught by its "{{".
LEFTOVER_JINJA = re.compile(r"(?<!\$)\{\{|\{%|%\}|(?<!\$)\{#")
# Helm's Go templates are copied as they are (_copy_without_render): "{{ }}" is their own syntax,
# so only Jinja's other openers, or the word cookiecutter, would be leftovers there.
GO_TEMPLATES = Path("deploy/helm/templates")
LEFTOVER_JINJA_IN_GO = re.compile(r"\{%|%\}|\{#|cookiecutter")
LICENSE_MARKERS = {
    "MIT": ("MIT License", "MIT"),
    "Apache-2.0": ("Apache License", "Apache-2.0"),
    "Proprietary": ("All rights reserved", "LicenseRef-Proprietary"),
}


def having(target: str) -> list[ParameterSet]:
    """The supported combinations whose deploy_targets answer includes the target."""
    return [
        combination
        for combination in SUPPORTED_COMBINATIONS
        if target in str(answers_of(combination).get("deploy_targets", DEFAULT_TARGETS)).split("+")
    ]


@pytest.fixture(scope="session")
def bakery(cookies_session: Any) -> Callable[[pytest.FixtureRequest], Project]:
    """Bake each supported combination once per run, whichever fixture asks for it first."""
    projects: dict[str, Project] = {}

    def bake(request: pytest.FixtureRequest) -> Project:
        key = json.dumps(request.param, sort_keys=True)
        if key not in projects:
            result = cookies_session.bake(extra_context=request.param, template=str(ROOT))
            assert result.exception is None, result.exception
            assert result.exit_code == 0
            projects[key] = Project(path=result.project_path, answers=dict(result.context))
        return projects[key]

    return bake


@pytest.fixture(scope="session", params=SUPPORTED_COMBINATIONS)
def baked(
    request: pytest.FixtureRequest, bakery: Callable[[pytest.FixtureRequest], Project]
) -> Project:
    """Every supported combination, baked; the tests only read the result."""
    return bakery(request)


@pytest.fixture(scope="session", params=having("helm"))
def charted(
    request: pytest.FixtureRequest, bakery: Callable[[pytest.FixtureRequest], Project]
) -> Project:
    """The supported combinations that ship the Helm chart."""
    return bakery(request)


def leftover_jinja(relative: Path) -> re.Pattern[str]:
    """The leftovers to look for in a generated file (its path relative to the project)."""
    return LEFTOVER_JINJA_IN_GO if relative.is_relative_to(GO_TEMPLATES) else LEFTOVER_JINJA


def text_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Yield every file under root that decodes as UTF-8, with its text."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            try:
                yield path, path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
