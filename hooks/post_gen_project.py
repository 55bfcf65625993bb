"""Finish a generated project: drop unselected files, write .env with fresh secrets, say what next.

Runs in cookiecutter's interpreter with the generated project as the working directory. Offline:
no git, no network. The secrets and .env are written by the project's own
scripts/init_secrets.py (imported from there), which asks the local `docker info` whether the
engine is rootless. Valid Python as stored; the one Jinja expression sits inside a raw string so
the tests can import this module without rendering it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType

ANSWERS_JSON = r"""{{ cookiecutter | jsonify }}"""

# (option, value) -> paths that only belong in the project when the option has that value. An
# answer of several parts joined by "+" (deploy_targets: "compose+helm") has each part's paths;
# a path listed under several values stays when any of them is chosen.
OPTIONAL_PATHS: dict[tuple[str, str], list[str]] = {
    ("ci", "github"): [".github"],
    ("ci", "gitlab"): [".gitlab-ci.yml", "renovate.json"],
    ("deploy_targets", "swarm"): ["deploy/stack.yaml", "scripts/deploy-stack", "docs/deploy.md"],
    ("deploy_targets", "helm"): ["deploy/helm", "docs/deploy.md"],
}


def chosen(answers: Mapping[str, object], option: str, value: str) -> bool:
    """Tell whether the answer to option is value, or holds it as one of its "+" parts."""
    return value in str(answers.get(option, "")).split("+")


def unselected_paths(answers: Mapping[str, object]) -> list[str]:
    """Return the optional paths that no chosen option value keeps, in table order."""
    kept = {
        path
        for (option, value), paths in OPTIONAL_PATHS.items()
        if chosen(answers, option, value)
        for path in paths
    }
    removed = [path for paths in OPTIONAL_PATHS.values() for path in paths if path not in kept]
    return list(dict.fromkeys(removed))


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


def load_writer(root: Path) -> ModuleType:
    """Import the project's scripts/init_secrets.py, the one writer of secrets/ and .env.

    scripts/init-secrets runs the same file in a fresh clone, so both write alike.
    """
    path = root / "scripts" / "init_secrets.py"
    spec = importlib.util.spec_from_file_location("init_secrets", path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    # No scripts/__pycache__/ left in the new project.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes_bytecode
    return module


def next_steps(
    slug: str, port: str, *, env_written: bool, generated: list[str], empty: list[str]
) -> str:
    """Return the message printed after generation; it counts only what it wrote (the secret
    files given random values, and those left empty for you to fill)."""
    env_note = ".env written." if env_written else ".env already existed and was left unchanged."
    notes = []
    if generated:
        notes.append(f"secrets/ holds {len(generated)} new random values: {', '.join(generated)}")
    if empty:
        files = ", ".join(f"secrets/{name}" for name in empty)
        notes.append(f"Empty, for the model provider's key you use: {files}")
    if generated or empty:
        notes.append("Never commit secrets/ (it is git-ignored).")
    else:
        notes.append("secrets/ already existed and was left unchanged.")
    secrets_note = "\n".join(notes)
    return "\n".join(
        [
            env_note,
            secrets_note,
            "",
            "Next steps:",
            f"  cd {slug}",
            "  docker compose up -d --wait        # api, worker, migrate, db and redis",
            f"  curl http://localhost:{port}/health",
            "Without Docker, with your own PostgreSQL and Redis (see .env and secrets/):",
            "  uv sync && uv run alembic upgrade head",
            f"  uv run python -m app --reload --port {port}",
            "Tests and checks: see README.md (TEST_DATABASE_URL, TEST_REDIS_URL).",
        ]
    )


def stale_env_warning(root: Path, writer: ModuleType) -> str:
    """Return a warning when a kept .env (a re-render with -f) disagrees with the answers."""
    rendered = (root / ".env.example").read_text(encoding="utf-8")
    differences = writer.env_differences((root / ".env").read_text(encoding="utf-8"), rendered)
    if not differences:
        return ""
    lines = "\n".join(f"  {difference}" for difference in differences)
    return (
        "WARNING: .env was kept (it may hold your own edits) but differs from these answers:\n"
        f"{lines}\n"
        "Edit .env to match, or delete it and generate again (secrets/ is kept either way).\n"
    )


def cruft_update_parent(cmdline: Path) -> bool | None:
    """Say whether the process that runs this hook is `cruft update`; None when unknown.

    cruft update renders the template twice (the project's commit and the new one) into
    scratch directories and merges the difference; neither render is the user's project.
    The command line comes from /proc (Linux); elsewhere the answer is unknown.
    """
    try:
        args = cmdline.read_bytes().split(b"\0")
    except OSError:
        return None
    words = [arg.decode(errors="replace") for arg in args]
    return "cruft" in map(os.path.basename, words) and "update" in words


def scratch_note(commit: str) -> str:
    """What `cruft update` shows for each of its renders instead of the generation message."""
    return (
        f"cruft update: rendered the template at {commit[:12]} in a scratch directory to merge\n"
        "  its changes; secrets/, .env and backups/ of your project are left as they are\n"
        "  ([tool.cruft] skip in pyproject.toml).\n"
    )


def targets_note(answers: Mapping[str, object]) -> str:
    """What `cruft update` shows when its render leaves out a deploy target's files.

    A project generated before deploy_targets existed has them all; cruft gives the new answer
    its default (compose), so a plain update would delete them.
    """
    targets = {
        path
        for (option, _), paths in OPTIONAL_PATHS.items()
        if option == "deploy_targets"
        for path in paths
    }
    left_out = [path for path in unselected_paths(answers) if path in targets]
    if not left_out:
        return ""
    return (
        f"  deploy_targets is {answers.get('deploy_targets')!r}: this render has no "
        f"{', '.join(left_out)}.\n"
        "  A project generated before deploy_targets existed keeps them with: cruft update\n"
        """  --variables-to-update '{"deploy_targets": "compose+swarm+helm"}' (see CHANGELOG).\n"""
    )


def main() -> None:
    """Remove unselected files, write .env and print the next steps."""
    answers = json.loads(ANSWERS_JSON)
    root = Path.cwd()
    remove_unselected(root, answers)
    # The same files in every render, scratch or not: cruft update merges the difference
    # between two renders, and a file that only one of them had would be added or deleted.
    writer = load_writer(root)
    rootless = writer.engine_is_rootless()
    env_written = writer.write_env(root, writer.secrets_gid(rootless, writer.current_gid()))
    written = writer.write_secrets(root)
    commit = answers.get("_commit")  # set by cruft, never by cookiecutter alone
    under_update = commit and cruft_update_parent(Path(f"/proc/{os.getppid()}/cmdline"))
    if under_update:
        print(scratch_note(str(commit)) + targets_note(answers), end="")
        return
    if not env_written:
        print(stale_env_warning(root, writer), end="")
    if env_written and rootless:
        print("Docker runs rootless here: SECRETS_GID=0 in .env (your own group, as its")
        print("containers see it). See secrets/ in README.md for other engines.")
    slug, port = str(answers["project_slug"]), str(answers["api_port"])
    generated = [name for name in written if name in writer.GENERATED_SECRETS]
    empty = [name for name in written if name in writer.EMPTY_SECRETS]
    print(next_steps(slug, port, env_written=env_written, generated=generated, empty=empty))
    if commit and under_update is None:
        print("(During cruft update, this message describes cruft's scratch render, not your")
        print(" project: its secrets/, .env and backups/ are skipped.)")


if __name__ == "__main__":
    main()
