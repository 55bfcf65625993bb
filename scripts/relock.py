"""Regenerate the generated project's uv.lock, once per supported Python version.

The lock of a rendered project must name the rendered project, so each lock is stored in
templates/uv-<python>.lock with the root package's name and version as Jinja expressions, and
`{{cookiecutter.project_slug}}/uv.lock` includes the one for the chosen Python.

    uv run python -m scripts.relock             # keep every pin, add what pyproject.toml adds
    uv run python -m scripts.relock --fresh     # re-resolve everything within its bounds
    uv run python -m scripts.relock --upgrade   # take the newest allowed versions
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
ROOT_PACKAGE = '[[package]]\nname = "{name}"\nversion = "{version}"\n'
ROOT_PACKAGE_TEMPLATE = ROOT_PACKAGE.format(
    name="{{ cookiecutter.__dist_name }}",
    version="{{ cookiecutter.version }}",
)


def python_versions() -> list[str]:
    options = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))
    return list(options["python_version"])


def lock_for(python: str, upgrade: bool, fresh: bool) -> str:
    """Render the default project for one Python, lock it, and turn the lock into a template."""
    with tempfile.TemporaryDirectory() as out:
        project = Path(
            cookiecutter(
                str(ROOT),
                no_input=True,
                output_dir=out,
                accept_hooks=False,
                extra_context={"python_version": python},
            )
        )
        if fresh:
            # Otherwise uv starts from the rendered lock and changes only what it must.
            (project / "uv.lock").unlink()
        command = ["uv", "lock", "--python", python] + (["--upgrade"] if upgrade else [])
        subprocess.run(command, cwd=project, check=True)
        lock = (project / "uv.lock").read_text(encoding="utf-8")
    root = ROOT_PACKAGE.format(name="ai-agent-api", version="0.1.0")
    if lock.count(root) != 1:
        sys.exit(f"the root package block was not found once in the {python} lock")
    return lock.replace(root, ROOT_PACKAGE_TEMPLATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upgrade", action="store_true", help="take the newest allowed versions")
    parser.add_argument("--fresh", action="store_true", help="re-resolve, ignoring current pins")
    options = parser.parse_args()
    for python in python_versions():
        target = ROOT / "templates" / f"uv-{python}.lock"
        target.write_text(lock_for(python, options.upgrade, options.fresh), encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
