"""The playground page: served with a strict policy when on, 404 when off."""

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncConnection

from app.config.settings import Settings
from app.playground.router import STATIC
from tests.conftest import make_settings, serve


async def _client(settings: Settings, connection: AsyncConnection) -> AsyncIterator[AsyncClient]:
    async for client in serve(settings, connection):
        yield client


@pytest.fixture
def on(settings: Settings) -> Settings:
    return settings.model_copy(update={"environment": "development"})


async def test_the_page_its_script_and_style_are_served_with_a_strict_policy(
    on: Settings, connection: AsyncConnection
) -> None:
    async for client in _client(on, connection):
        page = await client.get("/playground", headers={"Authorization": ""})
        script = await client.get("/playground/app.js")
        style = await client.get("/playground/style.css")
        icon = await client.get("/favicon.ico")

    assert page.status_code == 200
    assert "<h1>Agent playground</h1>" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert script.status_code == style.status_code == 200
    assert "text/event-stream" in script.text
    assert script.headers["content-type"].startswith("text/javascript")
    # What browsers ask every site for: the page's own icon, not a 404.
    assert (icon.status_code, icon.headers["content-type"]) == (200, "image/svg+xml")
    assert icon.content == (STATIC / "favicon.svg").read_bytes()
    assert 'rel="icon" href="/playground/favicon.svg"' in page.text


async def test_other_names_under_the_playground_are_404(
    on: Settings, connection: AsyncConnection
) -> None:
    async for client in _client(on, connection):
        response = await client.get("/playground/config.py")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("environment", "enabled", "served"),
    [
        ("production", "auto", False),
        ("test", "auto", False),
        ("development", "auto", True),
        ("development", False, False),
        ("production", True, True),
    ],
)
async def test_the_setting_and_the_environment_decide_whether_it_is_served(
    tmp_path: Path,
    migrated: str,
    redis_url: str,
    connection: AsyncConnection,
    environment: str,
    enabled: str | bool,
    served: bool,
) -> None:
    settings = make_settings(tmp_path, migrated, redis_url, playground={"enabled": enabled})
    settings = settings.model_copy(update={"environment": environment})
    async for client in _client(settings, connection):
        response = await client.get("/playground")
        icon = await client.get("/favicon.ico")
    expected = 200 if served else 404
    assert (response.status_code, icon.status_code) == (expected, expected)


def test_the_files_load_nothing_from_another_host_and_insert_no_markup() -> None:
    texts = {path.name: path.read_text() for path in STATIC.iterdir()}
    for name, text in texts.items():
        # The icon's SVG namespace is a name, not something loaded.
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:)?//[a-z]", text, re.IGNORECASE), name
    assert "innerHTML" not in texts["app.js"]
    assert "<script>" not in texts["index.html"]
