"""The service's name and version, read from pyproject.toml (their one source)."""

import tomllib
from functools import lru_cache

from app.config.loading import PROJECT_ROOT


@lru_cache
def project_metadata() -> tuple[str, str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return str(project["project"]["name"]), str(project["project"]["version"])
