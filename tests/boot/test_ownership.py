"""Two API keys against one booted api: a key's rows are invisible to the other on every /v1
endpoint, a named key keeps its rows across a rotation, and migration 0002 gives the rows
of a database from before it to the first key (and later migrations keep them readable)."""

import hmac
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.api import Api, api_env, config_file, new_secret, running_api
from tests.harness.postgres_server import PostgresServer
from tests.harness.redis_server import RedisServer
from tests.project import Project, project_env

UPLOAD = b"alpha's private notes\n"


@pytest.fixture(scope="module")
def project(default_project: Project) -> Project:
    return default_project


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {"alpha": new_secret(), "beta": new_secret(), "alpha_rotated": new_secret()}


@pytest.fixture(scope="module")
def service(
    project: Project,
    keys: dict[str, str],
    postgres: PostgresServer,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Api]:
    work = tmp_path_factory.mktemp("owners-api")
    # These tests count rows, not requests.
    config = config_file(project, work / "config.yaml", {"rate_limit": {"requests": 10_000}})
    env = api_env(
        work,
        database_url=postgres.create_database("owners"),
        redis_url=redis_server.url,
        CONFIG_FILE=str(config),
        # alpha is named, so it can be rotated; beta is a bare key.
        API_KEYS=f"alpha:{keys['alpha']},{keys['beta']}",
    )
    with running_api(project, env, work / "api.log") as api:
        yield api


def _alphas_rows(client: httpx.Client) -> dict[str, str]:
    """A file, a conversation with a message naming it, and a run: the id of each."""
    uploaded = client.post("/v1/files", files={"file": ("notes.txt", UPLOAD, "text/plain")})
    created = client.post("/v1/conversations", json={"title": "alpha's"})
    file_id, conversation_id = uploaded.json()["id"], created.json()["id"]
    sent = client.post(
        f"/v1/conversations/{conversation_id}/messages",
        json={"content": "summarise", "file_ids": [file_id]},
    )
    # No worker runs here: the run and the background response stay queued, which is all
    # their endpoints need.
    run = client.post(f"/v1/conversations/{conversation_id}/runs", json={"content": "later"})
    response = client.post(
        "/v1/responses", json={"model": "agent", "input": "later", "background": True}
    )
    statuses = [r.status_code for r in (uploaded, created, sent, run, response)]
    assert statuses == [201, 201, 201, 202, 200], sent.text
    return {
        "conversation_id": conversation_id,
        "file_id": file_id,
        "run_id": run.json()["id"],
        "response_id": response.json()["id"],
    }


# Bodies the endpoints need to get past validation to the owner check; the rest send none.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/conversations/{conversation_id}/messages"): {"json": {"content": "hi"}},
    ("POST", "/v1/conversations/{conversation_id}/runs"): {"json": {"content": "hi"}},
    ("POST", "/v1/conversations/{conversation_id}/agui"): {
        "json": {
            "threadId": str(uuid.uuid4()),
            "runId": "run-1",
            "messages": [{"id": "m1", "role": "user", "content": "hi"}],
            "tools": [],
            "context": [],
            "state": {},
            "forwardedProps": {},
        }
    },
    ("POST", "/v1/runs/{run_id}/approvals"): {
        "json": {"decisions": [{"tool_call_id": "call_1", "approved": True}]}
    },
}


def _by_id(service: Api, ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any], str]]:
    """Every /v1 operation of the running api that names a row by its id, from its OpenAPI
    document (an endpoint added later is covered without a change here): method, URL,
    request arguments and the id in the URL."""
    paths = httpx.get(f"{service.base_url}/openapi.json", timeout=10.0).json()["paths"]
    requests = []
    for template, operations in paths.items():
        names = re.findall(r"{(\w+)}", template)
        if not template.startswith("/v1/") or not names:
            continue
        assert set(names) <= ids.keys(), f"{template}: no row of the test for {names}"
        url = template.format(**ids)
        for method in operations:
            kwargs = BODIES.get((method.upper(), template), {})
            requests.append((method.upper(), url, kwargs, ids[names[-1]]))
    return requests


def test_a_keys_rows_are_invisible_to_another_key_on_every_endpoint(
    service: Api, keys: dict[str, str]
) -> None:
    with service.client(keys["alpha"]) as alpha, service.client(keys["beta"]) as beta:
        beta_total = beta.get("/v1/conversations").json()["total"]
        owned = _alphas_rows(alpha)
        conversation_id, file_id = owned["conversation_id"], owned["file_id"]
        operations = _by_id(service, owned)
        foreign = [beta.request(method, url, **kw) for method, url, kw, _ in operations]
        betas_own = beta.post("/v1/conversations", json={}).json()["id"]
        attach = beta.post(
            f"/v1/conversations/{betas_own}/messages",
            json={"content": "read alpha's file", "file_ids": [file_id]},
        )
        beta_list = beta.get("/v1/conversations", params={"limit": 100}).json()
        alpha_view = alpha.get(f"/v1/conversations/{conversation_id}")
        alpha_list = alpha.get("/v1/conversations", params={"limit": 100}).json()
        alpha_download = alpha.get(f"/v1/files/{file_id}")

    assert len(foreign) >= 9
    assert [response.status_code for response in foreign] == [404] * len(foreign)
    assert attach.status_code == 422
    assert attach.json()["detail"][0]["msg"] == f"file {file_id} not found"
    assert beta_list["total"] == beta_total + 1
    assert [item["id"] for item in beta_list["items"]] == [betas_own]
    assert alpha_view.status_code == 200
    assert len(alpha_view.json()["messages"]) == 3
    assert conversation_id in [item["id"] for item in alpha_list["items"]]
    assert betas_own not in [item["id"] for item in alpha_list["items"]]
    assert alpha_download.content == UPLOAD


def _comparable(response: httpx.Response, row_id: str) -> tuple[Any, ...]:
    varying = {"date", "x-request-id"}
    headers = sorted((k, v) for k, v in response.headers.items() if k not in varying)
    return response.status_code, headers, response.text.replace(row_id, "<id>")


def test_a_foreign_id_and_an_unknown_id_get_identical_answers(
    service: Api, keys: dict[str, str]
) -> None:
    unknown = {name: str(uuid.uuid4()) for name in ("conversation_id", "file_id", "run_id")}
    unknown["response_id"] = f"resp_{uuid.uuid4().hex}"
    with service.client(keys["alpha"]) as alpha, service.client(keys["beta"]) as beta:
        owned = _alphas_rows(alpha)
        pairs = [
            (
                _comparable(beta.request(method, url, **kwargs), row_id),
                _comparable(beta.request(method, unknown_url, **kwargs), unknown_id),
            )
            for (method, url, kwargs, row_id), (_, unknown_url, _, unknown_id) in zip(
                _by_id(service, owned), _by_id(service, unknown), strict=True
            )
        ]

    for foreign, never_existed in pairs:
        assert foreign == never_existed
        assert foreign[0] == 404


def test_a_named_key_rotated_to_a_new_value_keeps_its_rows(
    service: Api, keys: dict[str, str]
) -> None:
    with service.client(keys["alpha"]) as alpha:
        rows = _alphas_rows(alpha)
        conversation_id, file_id = rows["conversation_id"], rows["file_id"]

    service.restart(API_KEYS=f"alpha:{keys['alpha_rotated']},{keys['beta']}")
    with service.client(keys["alpha_rotated"]) as rotated, service.client(keys["alpha"]) as old:
        conversation = rotated.get(f"/v1/conversations/{conversation_id}")
        download = rotated.get(f"/v1/files/{file_id}")
        refused = old.get("/v1/conversations")

    assert conversation.status_code == 200
    assert conversation.json()["title"] == "alpha's"
    assert download.content == UPLOAD
    assert refused.status_code == 401


def _alembic(
    project: Project, env: dict[str, str], revision: str
) -> subprocess.CompletedProcess[str]:
    return project.run(
        str(project.path / ".venv/bin/alembic"), "upgrade", revision, env=env, check=False
    )


def test_migration_gives_rows_from_before_it_to_the_first_key(
    project: Project, postgres: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> None:
    database = "before_owners"
    first_key, second_key, secret_key = new_secret(), new_secret(), new_secret()
    # Empty *_FILE settings outrank the generated .env, which points them at secrets/.
    bare = project_env(
        DATABASE_URL=postgres.create_database(database), API_KEYS_FILE="", SECRET_KEY_FILE=""
    )
    assert _alembic(project, bare, "0001").returncode == 0
    conversation_id, file_id = uuid.uuid4(), uuid.uuid4()
    postgres.query(
        f"INSERT INTO conversations (id, title, created_at) VALUES"
        f" ('{conversation_id}', 'old', now());"
        f"INSERT INTO messages (id, conversation_id, role, content, file_ids, created_at) VALUES"
        f" ('{uuid.uuid4()}', '{conversation_id}', 'user', 'from before', '{{}}', now());"
        f"INSERT INTO files (id, filename, content_type, size_bytes, sha256, created_at) VALUES"
        f" ('{file_id}', 'old.txt', 'text/plain', 1, '{'0' * 64}', now());",
        database=database,
    )

    without_keys = _alembic(project, bare, "head")
    version_after_failure = postgres.query(
        "SELECT version_num FROM alembic_version", database=database
    )
    keyed = {**bare, "API_KEYS": f"{first_key},{second_key}", "SECRET_KEY": secret_key}
    with_keys = _alembic(project, keyed, "head")
    owners = postgres.query(
        "SELECT owner FROM conversations UNION ALL SELECT owner FROM files", database=database
    ).splitlines()

    assert without_keys.returncode != 0
    assert (
        without_keys.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "configuration error: migration 0002 gives existing conversations and files to the "
            "first key in API_KEYS, and needs API_KEYS and SECRET_KEY"
        )
    )
    assert "Traceback" not in without_keys.stderr
    assert version_after_failure == "0001"
    assert with_keys.returncode == 0, with_keys.stderr
    expected = hmac.new(secret_key.encode(), first_key.encode(), "sha256").hexdigest()[:32]
    assert owners == [f"key:{expected}"] * 2
    env = {
        **api_env(tmp_path, database_url=keyed["DATABASE_URL"], redis_url=redis_server.url),
        "API_KEYS": keyed["API_KEYS"],
        "SECRET_KEY": secret_key,
    }
    # Migrated above, by hand: the api starts on the database as the test left it.
    with (
        running_api(project, env, tmp_path / "api.log", migrate=False) as api,
        api.client(first_key) as first_client,
        api.client(second_key) as second_client,
    ):
        first = first_client.get(f"/v1/conversations/{conversation_id}")
        second = second_client.get(f"/v1/conversations/{conversation_id}")
    assert first.status_code == 200
    # Through every later migration too (0003: agent steps), the old message reads as before.
    (message,) = first.json()["messages"]
    assert (message["role"], message["content"]) == ("user", "from before")
    assert (message["tool_calls"], message["tool_call_id"], message["usage"]) == ([], None, None)
    assert second.status_code == 404
