"""Finish a generated project: drop unselected files, write .env with fresh secrets, say what next.

Runs in cookiecutter's interpreter with the generated project as the working directory. Offline:
no git, no network, no subprocesses. Valid Python as stored; the one Jinja expression sits inside
a raw string so the tests can import this module without rendering it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path

ANSWERS_JSON = r"""{{ cookiecutter | jsonify }}"""

# (option, value) -> paths that only belong in the project when the option has that value.
OPTIONAL_PATHS: dict[tuple[str, str], list[str]] = {
    ("ci", "github"): [".github"],
    ("ci", "gitlab"): [".gitlab-ci.yml"],
}

# Placeholders in .env.example look like change-me-db-password. Each distinct one gets one fresh
# secret used at every occurrence, so a password and the URL that embeds it stay equal; any new
# placeholder added to .env.example is covered without editing this hook.
PLACEHOLDER = re.compile(r"change-me-[a-z0-9]+(?:-[a-z0-9]+)*")
ENVIRONMENT_LINE = "ENVIRONMENT=development"


def unselected_paths(answers: Mapping[str, object]) -> list[str]:
    """Return the optional paths whose option value was not chosen."""
    return [
        path
        for (option, value), paths in OPTIONAL_PATHS.items()
        if answers.get(option) != value
        for path in paths
    ]


def remove_path(path: Path) -> None:
    """Delete a file or a directory tree; a path that is already gone is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def remove_unselected(root: Path, answers: Mapping[str, object]) -> None:
    """Remove the files of options that were not selected."""
    for relative in unselected_paths(answers):
        remove_path(root / relative)


def new_secret() -> str:
    """Return a random secret that can sit in a URL without escaping."""
    return secrets.token_urlsafe(32)


def env_from_example(example: str) -> str:
    """Return .env text: placeholders replaced by fresh secrets, ENVIRONMENT set to development."""
    fresh = {placeholder: new_secret() for placeholder in set(PLACEHOLDER.findall(example))}
    # One regex pass: a placeholder that is a prefix of another cannot corrupt it.
    example = PLACEHOLDER.sub(lambda match: fresh[match.group()], example)
    lines = [
        ENVIRONMENT_LINE if line.startswith("ENVIRONMENT=") else line
        for line in example.splitlines()
    ]
    return "\n".join(lines) + "\n"


def write_env(root: Path) -> bool:
    """Write root/.env from root/.env.example with mode 0600; keep an existing .env. Return True
    when a new file was written."""
    text = env_from_example((root / ".env.example").read_text(encoding="utf-8"))
    try:
        # O_EXCL with mode 0o600: the file never exists with wider permissions, even briefly,
        # and a .env from an earlier run (overwrite_if_exists) is never replaced.
        fd = os.open(root / ".env", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as env_file:
        env_file.write(text)
    return True


def next_steps(slug: str, port: str, *, env_written: bool) -> str:
    """Return the message printed after generation."""
    env_note = (
        ".env written with fresh random secrets (mode 0600; never commit it)."
        if env_written
        else ".env already existed and was left unchanged."
    )
    return "\n".join(
        [
            env_note,
            "",
            "Next steps:",
            f"  cd {slug}",
            "  docker compose up -d --wait        # api, migrate, db and redis in containers",
            f"  curl http://localhost:{port}/health",
            "Without Docker, with your own PostgreSQL and Redis (URLs in .env):",
            "  uv sync && uv run alembic upgrade head",
            f"  uv run python -m app --factory app.main:create_app --reload --port {port}",
            "Tests and checks: see README.md (TEST_DATABASE_URL, TEST_REDIS_URL).",
        ]
    )


def main() -> None:
    """Remove unselected files, write .env and print the next steps."""
    answers = json.loads(ANSWERS_JSON)
    root = Path.cwd()
    remove_unselected(root, answers)
    env_written = write_env(root)
    print(
        next_steps(str(answers["project_slug"]), str(answers["api_port"]), env_written=env_written)
    )


if __name__ == "__main__":
    main()
