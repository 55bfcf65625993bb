import io
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncConnection, async_sessionmaker

from app.config.keys import ApiKey
from app.core.security import owner_of
from app.keys import main, move_rows, owners_of
from tests.conftest import make_settings, serve


def test_owner_prints_the_owner_of_each_key_read_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("API_KEYS", "configured-key")
    monkeypatch.setenv("SECRET_KEY", "the-secret")
    monkeypatch.setattr("sys.stdin", io.StringIO("old-bare-key\nmobile:some-key\n"))

    code = main(["owner"])

    bare = owner_of(ApiKey(name=None, value=SecretStr("old-bare-key")), SecretStr("the-secret"))
    assert code == 0
    assert capsys.readouterr().out.splitlines() == [bare, "mobile"]


def test_owner_without_a_secret_key_says_so(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("SECRET_KEY_FILE", raising=False)
    monkeypatch.setenv("API_KEYS", "configured-key")

    code = main(["owner"])

    assert code == 2
    assert "secret_key" in capsys.readouterr().err


def test_move_refuses_a_target_that_no_key_could_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], migrated: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)

    code = main(["move", "mobile", "not a name"])

    assert code == 2
    assert "'not a name' is neither a key name nor an owner id" in capsys.readouterr().err


def test_move_with_no_rows_moves_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], migrated: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", migrated)
    nobody = f"nobody-{uuid.uuid4().hex[:8]}"

    code = main(["move", nobody, "mobile"])

    assert code == 0
    assert capsys.readouterr().out.strip() == (
        f"moved from {nobody!r} to 'mobile': "
        "0 conversations, 0 runs, 0 files, 0 model calls, 0 spend holds"
    )


async def test_moved_rows_are_seen_by_the_new_owner(
    tmp_path: Path, migrated: str, redis_url: str, connection: AsyncConnection
) -> None:
    # A key of its own: tests that commit their turns (other modules) leave ledger rows
    # under the suite's key, and this test counts every row it moves.
    old_key = f"keys-{uuid.uuid4().hex}"
    settings = make_settings(tmp_path, migrated, redis_url, api_keys=f"{old_key},mobile:new-key")
    [old_owner] = owners_of([old_key], settings.secret_key)
    async for client in serve(settings, connection, api_key=old_key):
        created = await client.post("/v1/conversations", json={"title": "moving"})
        uploaded = await client.post("/v1/files", files={"file": ("a.txt", b"x", "text/plain")})
        run = await client.post(
            f"/v1/conversations/{created.json()['id']}/runs", json={"content": "later"}
        )
        # A model call, in the ledger.
        await client.post(
            f"/v1/conversations/{created.json()['id']}/messages", json={"content": "hi"}
        )
        maker = async_sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
        async with maker() as session:
            moved = await move_rows(session=session, old=old_owner, new="mobile")
        as_new = {"Authorization": "Bearer new-key"}
        seen = await client.get(f"/v1/conversations/{created.json()['id']}", headers=as_new)
        download = await client.get(f"/v1/files/{uploaded.json()['id']}", headers=as_new)
        run_seen = await client.get(f"/v1/runs/{run.json()['id']}", headers=as_new)
        gone = await client.get(f"/v1/conversations/{created.json()['id']}")
        run_gone = await client.get(f"/v1/runs/{run.json()['id']}")
        spend = await client.get("/v1/usage", headers=as_new)
        spend_gone = await client.get("/v1/usage")

    assert moved == {"conversations": 1, "runs": 1, "files": 1, "model_calls": 1, "spend_holds": 0}
    assert (seen.status_code, download.status_code, run_seen.status_code) == (200, 200, 200)
    assert (gone.status_code, run_gone.status_code) == (404, 404)
    assert [day["calls"] for day in spend.json()["days"]] == [1]
    assert spend_gone.json()["days"] == []
