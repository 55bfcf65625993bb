"""Finish a generated project: drop unselected files, write .env with fresh secrets, say what next.

Runs in cookiecutter's interpreter with the generated project as the working directory. Offline:
no git, no network; the one command it runs is `docker info` on this machine, to learn whether
the engine is rootless (see secrets_gid). Valid Python as stored; the one Jinja expression sits
inside a raw string so the tests can import this module without rendering it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

ANSWERS_JSON = r"""{{ cookiecutter | jsonify }}"""

# (option, value) -> paths that only belong in the project when the option has that value.
OPTIONAL_PATHS: dict[tuple[str, str], list[str]] = {
    ("ci", "github"): [".github"],
    ("ci", "gitlab"): [".gitlab-ci.yml", "renovate.json"],
}

# One file per secret under secrets/, handed to the containers as compose secrets. The value
# is generated here, except the LLM key, which is yours to paste in when you use one.
GENERATED_SECRETS = ("postgres_password", "redis_password", "api_keys", "secret_key")
EMPTY_SECRETS = ("openai_api_key",)
# The directory keeps everyone else out (0700). The files are also readable by your group
# (0640): the api runs as a fixed non-root uid and reads them through that group id, which
# compose adds to the container (SECRETS_GID in .env); outside Swarm, compose cannot change
# the owner of a file secret.
SECRETS_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o640


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


def machine_values(secrets_gid: int) -> dict[str, str]:
    """Return the .env values set for this machine, not taken from the answers."""
    return {"ENVIRONMENT": "development", "SECRETS_GID": str(secrets_gid)}


MACHINE_KEYS = frozenset(machine_values(0))


def env_from_example(example: str, *, secrets_gid: int) -> str:
    """Return .env text: ENVIRONMENT=development and SECRETS_GID set, other lines as given."""
    values = machine_values(secrets_gid)
    lines = []
    for line in example.splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={values[key]}" if key in values and "=" in line else line)
    return "\n".join(lines) + "\n"


def write_env(root: Path, gid: int) -> bool:
    """Write root/.env from root/.env.example with mode 0600 and SECRETS_GID=gid; keep an
    existing .env. Return True when a new file was written."""
    example = (root / ".env.example").read_text(encoding="utf-8")
    text = env_from_example(example, secrets_gid=gid)
    try:
        # O_EXCL with mode 0o600: the file never exists with wider permissions, even briefly,
        # and a .env from an earlier run (overwrite_if_exists) is never replaced.
        fd = os.open(root / ".env", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as env_file:
        env_file.write(text)
    return True


def parse_env(text: str) -> dict[str, str]:
    """Return the KEY=value lines of an .env text (comments and blank lines left out)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {key.strip(): value for key, value in pairs if not key.lstrip().startswith("#")}


def env_differences(kept: str, rendered: str) -> list[str]:
    """Describe each value of a kept .env that this render's answers would set differently."""
    old, new = parse_env(kept), parse_env(rendered)
    return [
        f"{key}={old.get(key, '(missing)')} in .env, {value} from the answers"
        for key, value in new.items()
        if key not in MACHINE_KEYS and old.get(key) != value
    ]


def current_gid() -> int:
    """Return the user's primary group id (0 where the platform has none, as on Windows)."""
    getgid = getattr(os, "getgid", None)
    return int(getgid()) if getgid is not None else 0


# docker info's Go template for the security options; written in two parts because this file
# passes through Jinja, for which two opening braces start an expression.
SECURITY_OPTIONS_FORMAT = "{" + "{json .SecurityOptions}" + "}"


def engine_is_rootless() -> bool | None:
    """Ask this machine's Docker engine whether it runs rootless; None when none answers."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        result = subprocess.run(
            [docker, "info", "--format", SECURITY_OPTIONS_FORMAT],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return "name=rootless" in result.stdout


def secrets_gid(rootless: bool | None, gid: int) -> int:
    """The group through which the api reads secrets/: the files' group as containers see it.

    A rootful engine shows files with their owner's real ids, so that is the user's group. A
    rootless engine (and rootless Podman) maps the user's own uid and gid to 0 inside its
    containers, so there the files belong to group 0. With no engine to ask, assume rootful.
    """
    return 0 if rootless else gid


def write_secret(path: Path, value: str) -> bool:
    """Create one secret file, never readable by others; keep an existing one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as secret_file:
        os.fchmod(secret_file.fileno(), SECRET_FILE_MODE)  # only ever narrower than 0640
        secret_file.write(value)
    return True


def write_secrets(root: Path) -> list[str]:
    """Write secrets/ with fresh values; return the names of the files written."""
    directory = root / "secrets"
    directory.mkdir(mode=SECRETS_DIR_MODE, exist_ok=True)
    directory.chmod(SECRETS_DIR_MODE)
    written = [name for name in GENERATED_SECRETS if write_secret(directory / name, new_secret())]
    written += [name for name in EMPTY_SECRETS if write_secret(directory / name, "")]
    return written


def next_steps(slug: str, port: str, *, env_written: bool, secrets_written: list[str]) -> str:
    """Return the message printed after generation; it counts only what it wrote."""
    env_note = ".env written." if env_written else ".env already existed and was left unchanged."
    generated = [name for name in secrets_written if name in GENERATED_SECRETS]
    empty = [name for name in secrets_written if name in EMPTY_SECRETS]
    notes = []
    if generated:
        notes.append(f"secrets/ holds {len(generated)} new random values: {', '.join(generated)}")
    if empty:
        notes.append(f"secrets/{', secrets/'.join(empty)} is empty: paste your key there to use it")
    if secrets_written:
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
            "  docker compose up -d --wait        # api, migrate, db and redis in containers",
            f"  curl http://localhost:{port}/health",
            "Without Docker, with your own PostgreSQL and Redis (see .env and secrets/):",
            "  uv sync && uv run alembic upgrade head",
            f"  uv run python -m app --factory app.main:create_app --reload --port {port}",
            "Tests and checks: see README.md (TEST_DATABASE_URL, TEST_REDIS_URL).",
        ]
    )


def stale_env_warning(root: Path) -> str:
    """Return a warning when a kept .env (a re-render with -f) disagrees with the answers."""
    rendered = (root / ".env.example").read_text(encoding="utf-8")
    differences = env_differences((root / ".env").read_text(encoding="utf-8"), rendered)
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


def main() -> None:
    """Remove unselected files, write .env and print the next steps."""
    answers = json.loads(ANSWERS_JSON)
    root = Path.cwd()
    remove_unselected(root, answers)
    # The same files in every render, scratch or not: cruft update merges the difference
    # between two renders, and a file that only one of them had would be added or deleted.
    rootless = engine_is_rootless()
    env_written = write_env(root, secrets_gid(rootless, current_gid()))
    written = write_secrets(root)
    commit = answers.get("_commit")  # set by cruft, never by cookiecutter alone
    under_update = commit and cruft_update_parent(Path(f"/proc/{os.getppid()}/cmdline"))
    if under_update:
        print(scratch_note(str(commit)), end="")
        return
    if not env_written:
        print(stale_env_warning(root), end="")
    if env_written and rootless:
        print("Docker runs rootless here: SECRETS_GID=0 in .env (your own group, as its")
        print("containers see it). See secrets/ in README.md for other engines.")
    slug, port = str(answers["project_slug"]), str(answers["api_port"])
    print(next_steps(slug, port, env_written=env_written, secrets_written=written))
    if commit and under_update is None:
        print("(During cruft update, this message describes cruft's scratch render, not your")
        print(" project: its secrets/, .env and backups/ are skipped.)")


if __name__ == "__main__":
    main()
