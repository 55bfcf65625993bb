"""Fixtures: the app against REAL PostgreSQL and Redis, each test in a rolled-back transaction.

Point the tests at servers with TEST_DATABASE_URL and TEST_REDIS_URL. The database gets the
migrations applied; every test runs inside an outer transaction that is rolled back, and the
Redis database is flushed before each test, so use throwaway servers, not production ones.
"""

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from asgi_lifespan import LifespanManager
from fastapi import Request
from httpx import ASGITransport, AsyncClient
from opentelemetry.sdk.trace.export import SpanExporter
from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from app.agent.mcp import McpTools
from app.config.loading import PROJECT_ROOT, read_config_file
from app.config.sections import AppConfig
from app.config.settings import Settings, async_database_url, with_password
from app.conversations.models import Conversation
from app.core.db import create_engine
from app.core.metrics import Metrics
from app.core.queue import create_broker
from app.deps import get_sessionmaker, get_turns
from app.flows.execution import Executor
from app.llm.echo import EchoProvider
from app.main import create_app
from app.runs.models import Run
from app.spend.models import ModelCall
from app.turns import TurnBuilder
from tests.fake_openai import FakeOpenAI

API_KEY = "test-key-for-the-suite"
OTHER_API_KEY = "second-test-key"


def _required_url(name: str) -> str:
    """Return the URL in NAME, with the password from NAME_PASSWORD_FILE if one is given."""
    url = os.environ.get(name)
    if not url:
        reason = f"{name} is not set; point it at a throwaway server to run this test"
        if os.environ.get("CI", "").lower() in {"1", "true"}:
            pytest.fail(f"{reason} (required under CI=true)")
        pytest.skip(reason)
    password_file = os.environ.get(f"{name.removesuffix('_URL')}_PASSWORD_FILE")
    if password_file:
        url = with_password(url, Path(password_file).read_text(encoding="utf-8").strip())
    return url


@pytest.fixture(scope="session")
def database_url() -> str:
    return async_database_url(_required_url("TEST_DATABASE_URL"))


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _required_url("TEST_REDIS_URL")


@pytest.fixture(scope="session")
def migrated(database_url: str) -> str:
    """Apply the migrations once per run; return the URL of the migrated database."""
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")
    return database_url


@pytest.fixture(scope="session")
async def engine(migrated: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated, timeout=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """An outer transaction that every session of the test joins and that is rolled back."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        await transaction.rollback()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merged[key] = _merged(base[key], value)
        else:
            merged[key] = value
    return merged


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config_for_tests(**overrides: Any) -> AppConfig:
    """The shipped config/config.yaml, with the echo provider unless a test says otherwise,
    and a worker serving its metrics on a free port of the loopback interface."""
    shipped = read_config_file(PROJECT_ROOT / "config" / "config.yaml")
    for_tests = {
        "llm": {"provider": "echo"},
        "metrics": {"worker_host": "127.0.0.1", "worker_port": free_port()},
    }
    return AppConfig.model_validate(_merged(shipped, _merged(for_tests, overrides)))


def make_settings(
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    *,
    api_keys: str = f"{API_KEY},{OTHER_API_KEY}",
    **config: Any,
) -> Settings:
    """Settings for one test; nothing comes from a .env file."""
    return Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        api_keys=api_keys,
        secret_key="test-secret",
        openai_api_key="test-openai-key",
        anthropic_api_key="test-anthropic-key",
        gemini_api_key="test-gemini-key",
        logs_dir=tmp_path / "logs",
        uploads_dir=tmp_path / "uploads",
        config=config_for_tests(**config),
    )


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module (or parametrize) to change config.yaml values."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path,
    migrated: str,
    redis_url: str,
    config_overrides: dict[str, Any],
    redis: Redis,
) -> Settings:
    return make_settings(tmp_path, migrated, redis_url, **config_overrides)


async def serve(
    settings: Settings,
    connection: AsyncConnection | None,
    *,
    api_key: str = API_KEY,
    span_exporter: SpanExporter | None = None,
) -> AsyncIterator[AsyncClient]:
    """Run the app's lifespan and yield an authenticated client bound to the test transaction
    (with connection=None, to the app's own engine: its writes are committed)."""
    async for app in running_app(settings, connection, span_exporter=span_exporter):
        async with AsyncClient(
            transport=ASGITransport(app=app),
            base_url="http://testserver",
            headers={"Authorization": f"Bearer {api_key}"},
        ) as client:
            yield client


async def running_app(
    settings: Settings,
    connection: AsyncConnection | None,
    *,
    span_exporter: SpanExporter | None = None,
) -> AsyncIterator[ASGIApp]:
    """The app, its lifespan running, bound to the test transaction as serve's is: for clients
    that bring their own transport (the MCP SDK's)."""
    app = create_app(settings, span_exporter=span_exporter)
    if connection is not None:
        maker = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        app.dependency_overrides[get_sessionmaker] = lambda: maker

        async def turns_in_transaction(request: Request) -> TurnBuilder:
            return replace(await get_turns(request), sessionmaker=maker)

        app.dependency_overrides[get_turns] = turns_in_transaction
    async with LifespanManager(app) as manager:
        yield manager.app


@pytest.fixture
async def client(settings: Settings, connection: AsyncConnection) -> AsyncIterator[AsyncClient]:
    async for client in serve(settings, connection):
        yield client


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def maker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions in the test's transaction, as a worker's would be."""
    return async_sessionmaker(
        bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )


@pytest.fixture
async def executor(
    settings: Settings, maker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Executor]:
    """A worker's executor, in-process, on the test's database and Redis."""
    broker = create_broker(settings.redis_url.get_secret_value(), timeout=1.0)
    await broker.startup()
    mcp = McpTools((), settings.config.agent)
    yield Executor(TurnBuilder(settings, maker, EchoProvider(), Metrics(), mcp), broker)
    await broker.shutdown()


@pytest.fixture
def working() -> bool:
    """Whether a worker takes the queued runs in served_with_worker (a test that must find
    one queued parametrizes it to False)."""
    return True


@asynccontextmanager
async def served_with_worker(
    settings: Settings, engine: AsyncEngine, *, api_key: str, owners: tuple[str, ...], working: bool
) -> AsyncIterator[AsyncClient]:
    """The api and (if working) a worker over committed rows, as separate processes would be;
    what the owners wrote is deleted afterwards."""
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    broker = create_broker(settings.redis_url.get_secret_value(), timeout=1.0)
    mcp = McpTools((), settings.config.agent)
    executor = Executor(TurnBuilder(settings, sessionmaker, EchoProvider(), Metrics(), mcp), broker)
    worker = asyncio.create_task(_work(executor, sessionmaker)) if working else None
    try:
        async for client in serve(settings, None, api_key=api_key):
            yield client
    finally:
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        async with engine.begin() as connection:
            await connection.execute(delete(Conversation).where(Conversation.owner.in_(owners)))
            await connection.execute(delete(ModelCall).where(ModelCall.owner.in_(owners)))


async def _work(executor: Executor, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """The worker's loop, fed from the table instead of the Redis queue."""
    while True:
        async with sessionmaker() as session:
            queued = list(await session.scalars(select(Run.id).where(Run.status == "queued")))
        for run_id in queued:
            await executor.execute(run_id)
        await asyncio.sleep(0.02)


async def new_conversation_id(client: AsyncClient, **request: Any) -> str:
    """Start an untitled conversation (with the request options given) and return its id."""
    return str((await client.post("/v1/conversations", json={}, **request)).json()["id"])


async def start_run(client: AsyncClient, content: str) -> dict[str, Any]:
    """Queue a background run of a new conversation on `content`; return the run."""
    conversation = await new_conversation_id(client)
    response = await client.post(
        f"/v1/conversations/{conversation}/runs", json={"content": content}
    )
    assert response.status_code == 202, response.text
    run: dict[str, Any] = response.json()
    return run


@pytest.fixture
async def openai_client(
    tmp_path: Path,
    migrated: str,
    redis_url: str,
    connection: AsyncConnection,
    fake_openai: FakeOpenAI,
) -> AsyncIterator[AsyncClient]:
    """A client of an api whose provider is openai, pointed at the local fake, no retries."""
    llm = {"provider": "openai", "model": "test-model", "base_url": fake_openai.base_url}
    settings = make_settings(tmp_path, migrated, redis_url, llm={**llm, "max_retries": 0})
    async for client in serve(settings, connection):
        yield client
