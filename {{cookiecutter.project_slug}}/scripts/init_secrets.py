#!/usr/bin/env python3
"""Write what generation writes and a fresh clone lacks: secrets/ (random values) and .env.

    scripts/init-secrets            (or: python3 scripts/init_secrets.py)

Standard library only, and one copy of the logic: the post-generation hook of the template
imports this file, and scripts/init-secrets runs it. Existing files are kept, never rewritten.
SECRETS_GID in .env is your group id, or 0 on a rootless engine (see secrets/ in README.md).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

# One file per secret under secrets/, handed to the containers as compose secrets. The value
# is generated here, except the model providers' keys, which are yours to paste in when you
# use one (empty means no key).
GENERATED_SECRETS = ("postgres_password", "redis_password", "api_keys", "secret_key")
EMPTY_SECRETS = ("openai_api_key", "anthropic_api_key", "gemini_api_key")
# The directory keeps everyone else out (0700). The files are also readable by your group
# (0640): the api runs as a fixed non-root uid and reads them through that group id, which
# compose adds to the container (SECRETS_GID in .env); outside Swarm, compose cannot change
# the owner of a file secret.
SECRETS_DIR_MODE = 0o700
SECRET_FILE_MODE = 0o640


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


# docker info lists "rootless" under Security Options; Podman's docker prints "rootless: true".
ROOTLESS_LINE = re.compile(r"^ +rootless(: true)?$", re.MULTILINE)


def engine_is_rootless() -> bool | None:
    """Ask this machine's Docker engine whether it runs rootless; None when none answers."""
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        # A fixed argument list for the docker CLI on PATH, no shell.
        result = subprocess.run(  # noqa: S603
            [docker, "info"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return ROOTLESS_LINE.search(result.stdout) is not None


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


def main() -> int:
    """Create the missing secret files and .env of the project this script belongs to."""
    root = Path(__file__).resolve().parents[1]
    written = write_secrets(root)
    for name in (*GENERATED_SECRETS, *EMPTY_SECRETS):
        print(f"{'created' if name in written else 'kept   '} secrets/{name}", file=sys.stderr)
    gid = secrets_gid(engine_is_rootless(), current_gid())
    created = write_env(root, gid)
    print(f"{'created' if created else 'kept   '} .env", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
