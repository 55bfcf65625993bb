"""Every release of the template has a CHANGELOG entry, and the newest is the version we ship."""

import re
import subprocess
import tomllib

from tests.project import ROOT

HEADING = re.compile(r"^## (.+)$", re.MULTILINE)
RELEASE = re.compile(r"(\d+)\.(\d+)\.(\d+) \(\d{4}-\d{2}-\d{2}\)")


def releases() -> list[tuple[int, ...]]:
    headings = HEADING.findall((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert headings[0] == "Unreleased"
    found = []
    for heading in headings[1:]:
        match = RELEASE.fullmatch(heading)
        assert match, f"CHANGELOG heading {heading!r} is not 'X.Y.Z (YYYY-MM-DD)'"
        found.append(tuple(int(part) for part in match.groups()))
    return found


def test_releases_are_newest_first_and_the_newest_is_the_template_version() -> None:
    found = releases()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]

    assert found == sorted(found, reverse=True)
    assert len(set(found)) == len(found)
    assert ".".join(map(str, found[0])) == version


def test_every_release_tag_has_an_entry() -> None:
    if not (ROOT / ".git").exists():
        return  # an unpacked archive: no tags to compare
    tags = subprocess.run(
        ["git", "tag", "--list", "v*"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    entries = {"v" + ".".join(map(str, release)) for release in releases()}

    assert set(tags) <= entries, sorted(set(tags) - entries)


def test_the_manual_steps_name_a_release() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    steps = re.findall(r"\*\*Manual steps for projects generated from (\S+?)\*\*", text)
    known = {".".join(map(str, release)) for release in releases()}

    assert steps
    assert set(steps) <= known
