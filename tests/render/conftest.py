"""The render tier's shared pieces: each supported combination baked once, and file helpers."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.combinations import SUPPORTED_COMBINATIONS

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


@pytest.fixture(scope="session", params=SUPPORTED_COMBINATIONS)
def baked(request: pytest.FixtureRequest, cookies_session: Any) -> Baked:
    """Bake each supported combination once per run; the tests only read the result."""
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
