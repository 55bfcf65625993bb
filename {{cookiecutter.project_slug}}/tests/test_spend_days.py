"""Budgets and the usage report read the ledger summed per owner, day and model (spend_days),
which the database keeps equal to the ledger whatever writes, moves or deletes a call, on the
call's UTC day."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, cast, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from app.config.sections import BudgetConfig
from app.keys import move_rows
from app.spend import bounds
from app.spend.models import ModelCall, SpendDay
from tests.revisions import load_revision

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _call(
    owner: str, at: datetime, tokens: int, cost: str | None, model: str = "gpt-test"
) -> dict[str, Any]:
    return {
        "owner": owner,
        "provider": "openai",
        "model": model,
        "prompt_tokens": tokens - 1,
        "completion_tokens": 1,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": None if cost is None else Decimal(cost),
        "created_at": at,
    }


async def _totals(connection: AsyncConnection, owners: tuple[str, ...]) -> tuple[set[Any], ...]:
    """The ledger summed per owner, UTC day and model, and spend_days (its rows that count
    a call), each row as (owner, day, provider, model, calls, tokens, cost, unpriced calls)."""
    day = cast(func.timezone("UTC", ModelCall.created_at), Date)
    key = (ModelCall.owner, day, ModelCall.provider, ModelCall.model)
    ledger = await connection.execute(
        select(
            *key,
            func.count(),
            func.sum(ModelCall.prompt_tokens + ModelCall.completion_tokens),
            func.coalesce(func.sum(ModelCall.cost_usd), 0),
            func.count().filter(ModelCall.cost_usd.is_(None)),
        )
        .where(ModelCall.owner.in_(owners))
        .group_by(*key)
    )
    days = await connection.execute(
        select(
            SpendDay.owner,
            SpendDay.day,
            SpendDay.provider,
            SpendDay.model,
            SpendDay.calls,
            SpendDay.prompt_tokens + SpendDay.completion_tokens,
            SpendDay.cost_usd,
            SpendDay.unpriced_calls,
        ).where(SpendDay.owner.in_(owners), SpendDay.calls > 0)
    )
    return set(map(tuple, ledger)), set(map(tuple, days))


async def test_the_days_follow_the_ledger_whatever_writes_moves_or_deletes_a_call(
    connection: AsyncConnection,
) -> None:
    alpha, beta = (f"days-{uuid.uuid4().hex[:12]}" for _ in range(2))
    yesterday = NOW - timedelta(days=1)
    # Several rows in one statement (as a run's write), one through the ORM (as a turn's step).
    await connection.execute(
        insert(ModelCall),
        [
            _call(alpha, NOW, 100, "0.5"),
            _call(alpha, NOW, 10, None),
            _call(alpha, NOW, 5, "0.1", model="gpt-other"),
            _call(beta, yesterday, 7, "1"),
        ],
    )
    maker = async_sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    async with maker() as session:
        session.add(ModelCall(**_call(alpha, yesterday, 3, "0.25")))
        await session.commit()
    ledger, days = await _totals(connection, (alpha, beta))
    assert days == ledger
    assert (alpha, NOW.date(), "openai", "gpt-test", 2, 110, Decimal("0.5"), 1) in days

    # A key's rows moved to another owner (app.keys) take their totals along.
    async with maker() as session:
        await move_rows(session=session, old=alpha, new=beta)
    ledger, days = await _totals(connection, (alpha, beta))
    assert days == ledger
    assert {owner for owner, *_ in days} == {beta}

    await connection.execute(
        delete(ModelCall).where(ModelCall.owner == beta, ModelCall.created_at == yesterday)
    )
    await connection.execute(
        update(ModelCall)
        .where(ModelCall.owner == beta, ModelCall.prompt_tokens == 99)
        .values(cost_usd=Decimal("2"))
    )
    ledger, days = await _totals(connection, (alpha, beta))
    assert (
        days
        == ledger
        == {
            (beta, NOW.date(), "openai", "gpt-test", 2, 110, Decimal("2"), 1),
            (beta, NOW.date(), "openai", "gpt-other", 1, 5, Decimal("0.1"), 0),
        }
    )


async def test_a_budget_counts_a_call_on_its_utc_day_whatever_the_servers_time_zone(
    connection: AsyncConnection,
) -> None:
    owner = f"days-{uuid.uuid4().hex[:12]}"
    # Fourteen hours ahead of UTC: a local date would put each of these calls a day later.
    await connection.execute(text("SET LOCAL TIME ZONE 'Pacific/Kiritimati'"))
    month_start = datetime(2026, 3, 1, tzinfo=UTC)
    await connection.execute(
        insert(ModelCall),
        [
            _call(owner, month_start - timedelta(seconds=1), 1000, "10"),  # last month
            _call(owner, month_start + timedelta(days=1) - timedelta(seconds=1), 100, "1"),
            _call(owner, month_start + timedelta(days=1), 10, "0.1"),  # today, at midnight
        ],
    )
    budget = BudgetConfig(tokens_per_day=15, tokens_per_month=115)
    async with AsyncSession(bind=connection, join_transaction_mode="create_savepoint") as session:
        left = {b.name: b.spent for b in await bounds.budget_left(session, owner, budget, now=NOW)}
    assert left == {"tokens_per_day": 10, "tokens_per_month": 110}

    # spend_hold agrees: 5 tokens fit both bounds, 6 would cross them.
    async def hold(tokens: int) -> int | None:
        values = {
            "owner": owner,
            "holder": uuid.uuid4(),
            "tokens": tokens,
            "cost_usd": Decimal(0),
            "expires_at": NOW + timedelta(minutes=5),
            **bounds.windows(NOW),
            **budget.model_dump(),
        }
        return await bounds.take_hold(connection, values)

    assert await hold(6) is None
    assert await hold(5) is not None


async def test_the_migration_counts_the_calls_made_before_it(connection: AsyncConnection) -> None:
    owner = f"days-{uuid.uuid4().hex[:12]}"
    await connection.execute(
        insert(ModelCall), [_call(owner, NOW, 40, "0.4"), _call(owner, NOW, 2, None)]
    )
    # As the table stood before the migration: no totals (the test's transaction is rolled
    # back); then the migration's own backfill.
    await connection.execute(delete(SpendDay))
    await connection.execute(text(load_revision("0012").BACKFILL))

    ledger, days = await _totals(connection, (owner,))
    assert days == ledger == {(owner, NOW.date(), "openai", "gpt-test", 2, 42, Decimal("0.4"), 1)}
