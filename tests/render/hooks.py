"""The generation hooks, imported by path exactly as they are stored, and the answers they get."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "hooks"
# The writer of secrets/ and .env, shared by post_gen_project and scripts/init-secrets.
WRITER = ROOT / "{{cookiecutter.project_slug}}" / "scripts" / "init_secrets.py"
COOKIECUTTER_JSON = ROOT / "cookiecutter.json"


def load_hook(name: str, path: Path | None = None) -> ModuleType:
    """Import hooks/<name>.py (or the file at path) as stored, un-rendered."""
    spec = importlib.util.spec_from_file_location(name, path or HOOKS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pre_gen = load_hook("pre_gen_project")
post_gen = load_hook("post_gen_project")
init_secrets = load_hook("init_secrets", WRITER)


def rendered_answers(extra_context: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the answers cookiecutter would pass to the hooks, without prompting."""
    context = generate_context(context_file=str(COOKIECUTTER_JSON), extra_context=extra_context)
    return dict(prompt_for_config(context, no_input=True))


def first_error(**overrides: object) -> str:
    """Return the first error line for the default answers with some answers replaced."""
    errors = pre_gen.validate({**rendered_answers(), **overrides})
    assert errors, f"{overrides} was accepted"
    return str(errors[0])


def set_answers(monkeypatch: pytest.MonkeyPatch, module: ModuleType, **overrides: object) -> None:
    """Make the module's ANSWERS_JSON hold the default answers with some replaced."""
    answers = {**rendered_answers(), **overrides}
    monkeypatch.setattr(module, "ANSWERS_JSON", json.dumps(answers, sort_keys=True, indent=4))


# An .env.example as a render writes it, for the tests of what .env becomes.
EXAMPLE = """\
# comment mentioning nothing secret
ENVIRONMENT=production
POSTGRES_USER=bot
DATABASE_URL=postgresql://bot@localhost:5432/bot
DATABASE_PASSWORD_FILE=secrets/postgres_password
API_PORT=8000
SECRETS_GID=0
"""
