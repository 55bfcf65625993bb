"""The layers of app/: what each package may import, read from the source with ast."""

import ast
import importlib.util
from pathlib import Path

from pydantic import SecretStr

from app.core.config import ApiKey
from app.core.security import owner_of

APP = Path(__file__).resolve().parents[1] / "app"
REVISIONS = APP / "migrations" / "versions"


def _imported_modules(path: Path) -> list[str]:
    """Every module a file imports, at the top or inside a function, as a dotted name."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif isinstance(node, ast.ImportFrom):
            names.append("app")  # relative: inside the package whatever it names
    return names


def _imports_of(files: list[Path], forbidden: str) -> list[str]:
    return [
        f"{path.relative_to(APP.parent)}: {name}"
        for path in files
        for name in _imported_modules(path)
        if name == forbidden or name.startswith(forbidden + ".")
    ]


def test_revisions_import_nothing_from_the_app() -> None:
    # A revision runs against databases for years: importing live code would let a later
    # change of that code rewrite what an old revision does.
    revisions = sorted(REVISIONS.glob("*.py"))
    assert revisions
    assert _imports_of(revisions, "app") == []


def test_the_migration_template_imports_nothing_from_the_app() -> None:
    template = (APP / "migrations" / "script.py.mako").read_text(encoding="utf-8")
    assert "from app" not in template
    assert "import app" not in template


def test_core_imports_nothing_above_core() -> None:
    files = sorted((APP / "core").rglob("*.py"))
    above = [
        line for line in _imports_of(files, "app") if not line.split(": ")[1].startswith("app.core")
    ]
    assert above == []


def test_the_frozen_owner_of_migration_0002_is_the_apps() -> None:
    # Rows migration 0002 gave the first key must stay that key's: the app's derivation of an
    # owner has to keep matching the copy frozen in the revision.
    (path,) = REVISIONS.glob("*_0002_owners.py")
    spec = importlib.util.spec_from_file_location("revision_0002", path)
    assert spec is not None
    assert spec.loader is not None
    revision = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(revision)
    secret = SecretStr("a-secret")
    for name, value in (("alpha", "key-a"), (None, "key-b")):
        frozen = revision._owner_of(name, value, secret.get_secret_value())
        assert frozen == owner_of(ApiKey(name=name, value=SecretStr(value)), secret)
