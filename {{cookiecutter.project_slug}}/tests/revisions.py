"""The migrations' revisions, loaded as modules (they are files, not a package)."""

import importlib.util
from pathlib import Path
from types import ModuleType

REVISIONS = Path(__file__).parents[1] / "app" / "migrations" / "versions"


def load_revision(number: str) -> ModuleType:
    """The revision whose file carries this number (e.g. "0002")."""
    (path,) = REVISIONS.glob(f"*_{number}_*.py")
    spec = importlib.util.spec_from_file_location(f"revision_{number}", path)
    assert spec is not None
    assert spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    return revision
