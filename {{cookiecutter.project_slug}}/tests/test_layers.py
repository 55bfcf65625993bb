"""The layers of app/: what each package may import, read from the source with ast."""

import ast
from pathlib import Path

from pydantic import SecretStr

from app.config.keys import ApiKey
from app.core.security import owner_of
from tests.revisions import REVISIONS, load_revision

APP = Path(__file__).resolve().parents[1] / "app"


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


# The floors of app/, lowest first: a module imports from its own floor and those below,
# never from above (the migrations, apart, import nothing of the app).
FLOORS = [
    {"config"},  # config.yaml and the environment, read before anything
    {"core", "alive"},  # the database, Redis, logs, metrics, security
    {"llm", "files"},  # the model providers, and stored files
    {"agent"},  # the loop of a turn, and its tools
    {"spend", "conversations", "resources"},  # the domains, and what a process opens
    {"runs", "turns", "keys"},  # runs (on conversations and spend), and the turn builder
    {"flows"},  # use cases across domains: a message sent, a run executed
    {"deps", "worker", "playground"},  # the entry points' wiring, and the playground page
    {"api"},  # each way in, one folder or module each
    {"main", "__main__"},
]


def _floor(part: str) -> int:
    """A package's floor. One of your own not in FLOORS is taken for a way in, on api's floor
    (it may import anything below it, main may include its router), until you place it."""
    found = [i for i, floor in enumerate(FLOORS) if part in floor]
    return found[0] if found else _floor("api")


def test_every_floor_imports_only_from_its_own_and_those_below() -> None:
    files = [p for p in sorted(APP.rglob("*.py")) if "migrations" not in p.parts]
    upward = []
    for path in files:
        own = path.relative_to(APP).parts[0].removesuffix(".py")
        for name in _imported_modules(path):
            if name == "app" or not name.startswith("app."):
                continue
            imported = name.split(".")[1]
            if _floor(imported) > _floor(own):
                upward.append(f"{path.relative_to(APP.parent)}: {name}")

    assert upward == []


def test_every_floor_names_a_package_or_module_of_the_app() -> None:
    # A name left behind by a move would place nothing, and its new home nowhere.
    present = {path.name.removesuffix(".py") for path in APP.iterdir()}
    assert set().union(*FLOORS) - present == set()


def test_the_frozen_owner_of_migration_0002_is_the_apps() -> None:
    # Rows migration 0002 gave the first key must stay that key's: the app's derivation of an
    # owner has to keep matching the copy frozen in the revision.
    revision = load_revision("0002")
    secret = SecretStr("a-secret")
    for name, value in (("alpha", "key-a"), (None, "key-b")):
        frozen = revision._owner_of(name, value, secret.get_secret_value())
        assert frozen == owner_of(ApiKey(name=name, value=SecretStr(value)), secret)
