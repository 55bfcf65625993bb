"""The generated scripts/ back up and restore a real stack's data, and refuse what would lose it."""

import hashlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compose.conftest import FIRST_VARIANT_ONLY
from tests.harness.environment import free_port
from tests.harness.stack import Rendered, Stack, run_script, script_env
from tests.project import ROOT

SCRIPTS = (
    "backup-db",
    "backup-volume",
    "backup-all",
    "restore-db",
    "restore-volume",
    "verify-backup",
    "prune-backups",
    "doctor",
)
TABLES = ("conversations", "messages", "files")
# The scripts are copied as they are and back up PostgreSQL and the uploads alike whichever
# Redis flavor the stack runs: the tests of pg_dump's backups and of the scripts' own rules run
# on the first variant only. The volume archives test runs on each: it takes redis_data too.


@pytest.fixture(scope="module")
def hyphenated(rendered: Rendered) -> Iterator[Stack]:
    """A running stack whose compose project name has hyphens, shared by the tests below that
    compare the data only with itself."""
    stack = Stack(rendered.project, rendered.images, f"tpl-{secrets.token_hex(3)}-bk", free_port())
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def _seed_rows(stack: Stack, conversations: int) -> None:
    """Insert conversations with one message each, in one statement."""
    stack.psql(
        "WITH c AS (INSERT INTO conversations (id, owner, title, created_at)"
        " SELECT gen_random_uuid(), 'seeded', 'seeded ' || i, now()"
        f" FROM generate_series(1, {conversations}) i RETURNING id, title)"
        " INSERT INTO messages (id, conversation_id, role, content, file_ids, created_at)"
        " SELECT gen_random_uuid(), id, 'user', 'hello from ' || title, '{}', now() FROM c"
    )


def _fingerprint(stack: Stack) -> dict[str, str]:
    """Return each table's row count and a hash of all its rows."""
    return {
        table: stack.psql(
            f"SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text),"
            f" '')) FROM {table} t"
        )
        for table in TABLES
    }


def _upload(stack: Stack, count: int) -> dict[str, str]:
    """Upload files of different sizes through the API; return their ids and SHA-256."""
    uploaded = {}
    with stack.client() as client:
        for n in range(count):
            data = secrets.token_hex(1000 * (n + 1)).encode()
            response = client.post("/v1/files", files={"file": (f"f{n}.txt", data, "text/plain")})
            assert response.status_code == 201, response.text
            uploaded[response.json()["id"]] = hashlib.sha256(data).hexdigest()
    return uploaded


def _downloaded(stack: Stack, ids: list[str]) -> dict[str, str]:
    """Download each file through the API; return the SHA-256 of each body (or the status)."""
    checksums = {}
    with stack.client() as client:
        for file_id in ids:
            response = client.get(f"/v1/files/{file_id}")
            ok = response.status_code == 200
            checksums[file_id] = hashlib.sha256(response.content).hexdigest() if ok else "gone"
    return checksums


def _written(result: subprocess.CompletedProcess[str], stack: Stack) -> dict[str, Path]:
    """Map each backup a script printed ("<size>\\t<path>" lines) to its kind: db, uploads..."""
    paths = [Path(line.split("\t")[1]) for line in result.stdout.splitlines()]
    return {path.name.removeprefix(f"{stack.name}-").rsplit("-", 1)[0]: path for path in paths}


def _only(result: subprocess.CompletedProcess[str], stack: Stack) -> Path:
    written = _written(result, stack)
    assert len(written) == 1, result.stdout
    return next(iter(written.values()))


@FIRST_VARIANT_ONLY
def test_backup_all_then_restore_brings_back_every_row_and_upload(hyphenated: Stack) -> None:
    stack = hyphenated
    _seed_rows(stack, 3000)
    uploads = _upload(stack, 6)
    before = _fingerprint(stack)
    backups = _written(run_script(stack, "backup-all"), stack)

    stack.psql("DELETE FROM conversations WHERE title LIKE 'seeded 1%'; DROP TABLE files")
    stack.exec("api", "sh", "-c", "rm -f /app/uploads/*")
    left = stack.exec("api", "ls", "/app/uploads").stdout.split()
    files_table = stack.psql("SELECT to_regclass('public.files')")
    run_script(stack, "restore-db", "--yes", str(backups["db"]))
    run_script(stack, "restore-volume", "--yes", "uploads", str(backups["uploads"]))

    assert sorted(backups) == ["db", "uploads"]
    assert (left, files_table) == ([], "")
    assert _fingerprint(stack) == before
    assert int(before["messages"].split()[0]) >= 3000
    assert _downloaded(stack, list(uploads)) == uploads


@FIRST_VARIANT_ONLY
def test_a_damaged_dump_is_refused_and_the_live_data_stays_as_it_was(
    hyphenated: Stack, tmp_path: Path
) -> None:
    stack = hyphenated
    _seed_rows(stack, 2000)
    dump = _only(run_script(stack, "backup-db"), stack).read_bytes()
    truncated, garbage = tmp_path / "truncated.dump", tmp_path / "garbage.dump"
    truncated.write_bytes(dump[: len(dump) // 2])
    garbage.write_bytes(os.urandom(len(dump)))
    # Live data now differs from the dump: a restore that got halfway would show.
    stack.psql("DELETE FROM conversations WHERE title LIKE 'seeded 2%'")
    before = _fingerprint(stack)

    cut = run_script(stack, "restore-db", "--yes", str(truncated), check=False)
    junk = run_script(stack, "restore-db", "--yes", str(garbage), check=False)
    with stack.client() as client:
        health = client.get("/health")

    assert cut.returncode == 1
    assert "end of file" in cut.stderr
    assert "rolled back, so the database is as it was before" in cut.stderr
    assert junk.returncode == 1
    assert "is not a readable PostgreSQL custom-format dump; nothing was changed" in junk.stderr
    assert _fingerprint(stack) == before
    assert health.status_code == 200


@FIRST_VARIANT_ONLY
def test_verify_backup_passes_on_a_fresh_dump_and_fails_once_the_data_changed(
    hyphenated: Stack,
) -> None:
    stack = hyphenated
    _seed_rows(stack, 500)
    dump = _only(run_script(stack, "backup-db"), stack)

    # A file name relative to the caller's directory.
    good = run_script(stack, "verify-backup", dump.name, cwd=dump.parent)
    stack.psql(
        "INSERT INTO conversations (id, owner, title, created_at)"
        " VALUES (gen_random_uuid(), 'seeded', 'after the dump', now())"
    )
    changed = run_script(stack, "verify-backup", str(dump), check=False)
    scratch = stack.psql(r"SELECT count(*) FROM pg_database WHERE datname LIKE 'verify\_%'")

    assert "matches the live database" in good.stdout
    assert "public.messages" in good.stdout
    assert changed.returncode == 1
    assert "< public.conversations" in changed.stdout
    assert "public.messages" not in changed.stdout
    assert scratch == "0"


@FIRST_VARIANT_ONLY
def test_scripts_run_from_any_directory_for_a_hyphenated_project_name(
    hyphenated: Stack, tmp_path: Path
) -> None:
    stack = hyphenated
    scripts = stack.project.path / "scripts"
    template = ROOT / "{{cookiecutter.project_slug}}" / "scripts"
    helps = {script: run_script(stack, script, "--help", check=False) for script in SCRIPTS}
    wrong = {script: run_script(stack, script, "--bogus", check=False) for script in SCRIPTS}
    dump = _only(run_script(stack, "backup-db", cwd=tmp_path), stack)
    backups = sorted(dump.parent.iterdir())
    missing_helper = script_env(stack, BACKUP_HELPER_IMAGE="local/no-such-helper:none")
    failed = run_script(stack, "backup-volume", "uploads", env=missing_helper, check=False)

    # Copied as they are (no template syntax in them) and executable; deploy-stack only
    # when deploy_targets has swarm.
    swarm = (stack.project.path / "deploy" / "stack.yaml").exists()
    assert {p.name: p.read_bytes() for p in scripts.iterdir()} == {
        p.name: p.read_bytes() for p in template.iterdir() if swarm or p.name != "deploy-stack"
    }
    assert all(os.access(scripts / script, os.X_OK) for script in SCRIPTS)
    assert {s: (r.returncode, "Usage:" in r.stdout) for s, r in helps.items()} == {
        s: (0, True) for s in SCRIPTS
    }
    assert {s: r.returncode for s, r in wrong.items()} == {s: 2 for s in SCRIPTS}
    assert dump.parent == stack.project.path / "backups"
    assert dump.name.startswith(f"{stack.name}-db-")
    assert failed.returncode == 1
    assert "no file was kept" in failed.stderr
    assert sorted(dump.parent.iterdir()) == backups


@FIRST_VARIANT_ONLY
def test_prune_keeps_the_newest_two_of_each_kind(rendered: Rendered, tmp_path: Path) -> None:
    # A copy of the scripts with a backups/ of their own: pruning needs no stack.
    project = tmp_path / "project"
    shutil.copytree(rendered.project.path / "scripts", project / "scripts")
    backups = project / "backups"
    backups.mkdir()
    stamps = [f"2026010{day}T03150{day}Z" for day in range(1, 6)]
    names = [f"my-app-db-{s}.dump" for s in stamps] + [f"my-app-uploads-{s}.tar.gz" for s in stamps]
    for age, name in enumerate(reversed(names)):
        (backups / name).write_text("backup")
        # Oldest by name, newest on disk: the name's timestamp decides, not the file's date.
        os.utime(backups / name, (1_700_000_000 + age, 1_700_000_000 + age))
    (backups / "notes.txt").write_text("not a backup")

    result = subprocess.run(
        [str(project / "scripts" / "prune-backups"), "--keep", "2"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    kept = sorted(path.name for path in backups.iterdir())
    printed = result.stdout.splitlines()
    deleted = sorted(Path(line.removeprefix("deleted ")).name for line in printed)
    assert kept == sorted([*names[3:5], *names[8:10], "notes.txt"])
    assert deleted == sorted([*names[0:3], *names[5:8]])


def test_volume_archives_bring_postgres_and_redis_back_after_down_v(fresh_stack: Stack) -> None:
    stack = fresh_stack
    stack.up()
    with stack.client() as client:
        conversation = client.post("/v1/conversations", json={"title": "in the volume"}).json()
    stack.redis_cli("set", "backup-key", "kept-value")

    refused = run_script(stack, "backup-volume", "postgres_data", check=False)
    redis_archive = _only(run_script(stack, "backup-volume", "redis_data"), stack)
    stack.compose("stop", "db")
    postgres_archive = _only(run_script(stack, "backup-volume", "postgres_data"), stack)
    stack.compose("down", "-v")
    run_script(stack, "restore-volume", "--yes", "postgres_data", str(postgres_archive))
    run_script(stack, "restore-volume", "--yes", "redis_data", str(redis_archive))
    started = stack.compose("up", "-d", "--wait", "--no-build")
    with stack.client() as client:
        restored = client.get(f"/v1/conversations/{conversation['id']}")
    value = stack.redis_cli("get", "backup-key")

    assert refused.returncode == 1
    assert "while the db service runs" in refused.stderr
    assert "scripts/backup-db" in refused.stderr
    assert refused.stdout == ""
    assert restored.status_code == 200
    assert restored.json()["title"] == "in the volume"
    assert value.strip() == "kept-value"
    # Recreated with compose's labels, the volumes are adopted without a warning.
    assert "already exists" not in started.stderr
