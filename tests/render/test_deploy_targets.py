"""deploy_targets: a project ships the files of the targets it chose, and nothing in it points at
the files of the others (README links, CI jobs, scripts, docs)."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from tests.project import Project, render
from tests.render.conftest import text_files
from tests.render.hooks import post_gen

# A Markdown link or image to a file of the project: [text](path) or [text](path#anchor).
RELATIVE_LINK = re.compile(r"\]\((?![a-z][a-z0-9+.-]*:)([^)#\s]+)(?:#[^)]*)?\)")


def removed(project: Project) -> list[str]:
    """The deploy targets' paths the post-generation hook removed for this project's answers."""
    targets = {
        path
        for (option, _), paths in post_gen.OPTIONAL_PATHS.items()
        if option == "deploy_targets"
        for path in paths
    }
    return [path for path in post_gen.unselected_paths(project.answers) if path in targets]


def test_the_chosen_targets_files_are_there_and_no_others(baked: Project) -> None:
    chosen = baked.answers["deploy_targets"].split("+")
    shipped = [
        path
        for (option, value), paths in post_gen.OPTIONAL_PATHS.items()
        if option == "deploy_targets" and value in chosen
        for path in paths
    ]

    assert [path for path in shipped if not (baked.path / path).exists()] == []
    assert [path for path in removed(baked) if (baked.path / path).exists()] == []
    assert (baked.path / "compose.yaml").is_file()  # every project deploys with compose


def test_no_file_names_a_removed_path(baked: Project) -> None:
    names = {name for path in removed(baked) for name in (path, PurePosixPath(path).name)}
    mentions = [
        f"{path.relative_to(baked.path)}: {name}"
        for path, text in text_files(baked.path)
        if path.name != "uv.lock"
        for name in sorted(names)
        if name in text
    ]

    assert mentions == []


def test_every_relative_markdown_link_leads_to_a_file(baked: Project) -> None:
    broken = [
        f"{page.relative_to(baked.path)}: {target}"
        for page in baked.path.rglob("*.md")
        for target in RELATIVE_LINK.findall(page.read_text(encoding="utf-8"))
        if not (page.parent / target).exists()
    ]

    assert broken == []


def test_the_default_project_has_no_swarm_or_kubernetes_part(tmp_path: Path) -> None:
    project = render(tmp_path, {})
    paths = [str(path.relative_to(project.path)) for path in project.path.rglob("*")]
    words = [
        f"{path.relative_to(project.path)}: {match.group()}"
        for path, text in text_files(project.path)
        if path.name != "uv.lock"
        for match in re.finditer(r"helm|kubectl|docker stack|deploy-stack", text, re.IGNORECASE)
    ]

    assert [p for p in paths if re.search(r"helm|stack\.yaml|deploy-stack|deploy\.md", p)] == []
    assert words == []
