"""What a team does to its generated project between template releases, and what it keeps."""

import stat
from dataclasses import dataclass

from tests.project import Project
from tests.update.releases import HISTORY_LINE, USER_HISTORY_LINE, commit_all, replace_once

USER_ROUTER = '''"""The team's own endpoint, added after generation."""

from fastapi import APIRouter

router = APIRouter(tags=["ping"])


@router.get("/ping")
async def ping() -> dict[str, str]:
    """Answer pong."""
    return {"ping": "pong"}
'''
USER_TEST = """from httpx import AsyncClient


async def test_ping_answers_pong(client: AsyncClient) -> None:
    response = await client.get("/v1/ping")

    assert response.status_code == 200
    assert response.json() == {"ping": "pong"}
"""
USER_README_LINE = "\nOn call: #team-agents.\n"
FILES_IMPORT = "from app.files import storage\n"
FILES_INCLUDE = (
    "    app.include_router(files.router, prefix=API_PREFIX, dependencies=api_dependencies)\n"
)
PING_IMPORT = "from app.hello.router import router as ping_router\n"
PING_INCLUDE = FILES_INCLUDE.replace("files.router", "ping_router")
# The files the team added, beside the three it edited (app/main.py, config.yaml, README.md).
TEAM_FILES = ("app/hello/__init__.py", "app/hello/router.py", "tests/test_ping.py")


@dataclass(frozen=True)
class Kept:
    """What generation wrote and an update must never touch: bytes and modes."""

    files: dict[str, tuple[bytes, int]]

    @classmethod
    def of(cls, project: Project) -> "Kept":
        paths = [
            project.path / ".env",
            project.path / "secrets",
            *(project.path / "secrets").iterdir(),
        ]
        return cls(
            {
                str(path.relative_to(project.path)): (
                    path.read_bytes() if path.is_file() else b"",
                    stat.S_IMODE(path.stat().st_mode),
                )
                for path in paths
            }
        )

    def secret_values(self) -> list[str]:
        return [
            data.decode().strip()
            for name, (data, _) in self.files.items()
            if name.startswith("secrets/") and data.strip()
        ]


def edit_as_a_team(project: Project, env: dict[str, str]) -> None:
    """A new router wired into the app with its test, a config value, a README line.

    Made to a project of the previous main (releases.PREVIOUS_MAIN), whose files do not change
    as the template does: the anchors below hold until that commit moves.
    """
    # The package sorts right after app.files, where its import goes, in the old release and
    # in the new one: the merge keeps ruff's order.
    package = project.path / "app" / "hello"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "router.py").write_text(USER_ROUTER, encoding="utf-8")
    (project.path / "tests" / "test_ping.py").write_text(USER_TEST, encoding="utf-8")
    main = project.path / "app" / "main.py"
    replace_once(main, FILES_IMPORT, FILES_IMPORT + PING_IMPORT)
    replace_once(main, FILES_INCLUDE, FILES_INCLUDE + PING_INCLUDE)
    replace_once(project.path / "config" / "config.yaml", HISTORY_LINE, USER_HISTORY_LINE)
    with (project.path / "README.md").open("a", encoding="utf-8") as readme:
        readme.write(USER_README_LINE)
    commit_all(project, env, "Our own endpoint, a shorter history, the on-call channel")


def without_team_edits(files: dict[str, tuple[bytes, bool]]) -> dict[str, tuple[bytes, bool]]:
    """The project's files as the template rendered them: the team's edits taken out.

    Each edit must be there exactly once (a merge that lost or doubled one fails here); only
    the team's own lines are named, so the template may change the lines around them.
    """
    kept = {name: file for name, file in files.items() if name not in TEAM_FILES}
    assert set(files) - set(kept) == set(TEAM_FILES), sorted(set(TEAM_FILES) - set(files))
    undo = [
        ("app/main.py", PING_IMPORT, ""),
        ("app/main.py", PING_INCLUDE, ""),
        ("config/config.yaml", USER_HISTORY_LINE, HISTORY_LINE),
        ("README.md", USER_README_LINE, ""),
    ]
    for name, line, generated in undo:
        data, executable = kept[name]
        text = data.decode()
        assert text.count(line) == 1, f"{name}: expected the team's {line!r} once"
        kept[name] = (text.replace(line, generated).encode(), executable)
    return kept
