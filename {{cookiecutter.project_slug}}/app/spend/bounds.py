"""What is left of a key's budget, and the statements that read it and hold on it, built once
with parameters (a statement built per call is walked for its cache key on every call)."""

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Numeric, Text, Uuid, bindparam, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.types import TypeEngine

from app.agent.loop import Refusal
from app.config.sections import BudgetConfig
from app.spend.models import Hold, SpendDay
from app.spend.schemas import BudgetLeft, plain

BOUNDS = ("tokens_per_day", "tokens_per_month", "usd_per_day", "usd_per_month")


# What the owner's ledger holds for today and this month, by bound name (its days' totals).
_TOKENS = SpendDay.prompt_tokens + SpendDay.completion_tokens
_TODAY = SpendDay.day >= bindparam("today")
_SPENT = (
    select(
        func.coalesce(func.sum(_TOKENS).filter(_TODAY), 0).label("tokens_per_day"),
        func.coalesce(func.sum(SpendDay.cost_usd).filter(_TODAY), 0).label("usd_per_day"),
        func.coalesce(func.sum(_TOKENS), 0).label("tokens_per_month"),
        func.coalesce(func.sum(SpendDay.cost_usd), 0).label("usd_per_month"),
    )
    .where(SpendDay.owner == bindparam("owner"), SpendDay.day >= bindparam("first_day"))
    .subquery()
)
# What the owner's calls in progress hold.
_HELD = (
    select(
        func.coalesce(func.sum(Hold.tokens), 0).label("tokens"),
        func.coalesce(func.sum(Hold.cost_usd), 0).label("usd"),
    )
    .where(Hold.owner == bindparam("owner"), Hold.expires_at > bindparam("now"))
    .subquery()
)
_LEFT = select(_SPENT, _HELD).select_from(_SPENT.join(_HELD, true()))


# The table itself, not the ORM class: these statements need none of the ORM's work
# (synchronising a session, loading objects), which would cost more than the SQL.
HOLDS = Hold.metadata.tables[Hold.__tablename__]


# The hold, in one statement: spend_hold (migration 0009) takes the owner's lock, then inserts
# the holder's hold (replacing a dead attempt's) only if every bound has room for it beside what
# the owner spent and holds; it returns the hold's id, or NULL. A function, so that its insert
# reads the sums only once the lock is this call's (each of its statements takes its own
# snapshot), in one round trip. Its arguments in order, typed as the function declares them
# (asyncpg sends each parameter as its type).
_HOLD_ARGUMENTS: dict[str, TypeEngine[Any]] = {
    "owner": Text(),
    "holder": Uuid(),
    "tokens": BigInteger(),
    "cost_usd": Numeric(),
    **dict.fromkeys(("expires_at", "now", "day_start", "month_start"), DateTime(timezone=True)),
    **{bound: BigInteger() if bound.startswith("tokens") else Numeric() for bound in BOUNDS},
}
_HOLD = select(func.spend_hold(*(bindparam(n, type_=t) for n, t in _HOLD_ARGUMENTS.items())))
RELEASE = HOLDS.delete().where(HOLDS.c.holder == bindparam("holder"))


async def take_hold(connection: AsyncConnection, values: dict[str, Any]) -> int | None:
    """The hold's id, or None when a bound has no room for it."""
    taken: int | None = await connection.scalar(_HOLD, values)
    return taken


def windows(now: datetime) -> dict[str, datetime]:
    """The instant, and the starts of the budgets' spans: today (UTC) and this calendar month."""
    day_start = datetime(now.year, now.month, now.day, tzinfo=UTC)
    return {"now": now, "day_start": day_start, "month_start": day_start.replace(day=1)}


async def budget_left(
    session: AsyncSession, owner: str, budget: BudgetConfig, *, now: datetime | None = None
) -> list[BudgetLeft]:
    """Each bound of the budget: its limit, what was spent and is held, what is left."""
    spans = windows(now or datetime.now(UTC))
    values = {
        "owner": owner,
        "now": spans["now"],
        "today": spans["day_start"].date(),
        "first_day": spans["month_start"].date(),
    }
    row = (await session.execute(_LEFT, values)).one()
    day = spans["day_start"] + timedelta(days=1)
    month = (spans["month_start"] + timedelta(days=32)).replace(day=1)
    # A call in progress counts against today and this month alike.
    bounds = [
        ("tokens_per_day", budget.tokens_per_day, row.tokens_per_day, row.tokens, day),
        ("tokens_per_month", budget.tokens_per_month, row.tokens_per_month, row.tokens, month),
        ("usd_per_day", budget.usd_per_day, row.usd_per_day, row.usd, day),
        ("usd_per_month", budget.usd_per_month, row.usd_per_month, row.usd, month),
    ]
    return [
        BudgetLeft(
            name=name,
            limit=Decimal(limit),
            spent=Decimal(used),
            held=Decimal(holding),
            left=max(Decimal(limit) - Decimal(used) - Decimal(holding), Decimal(0)),
            resets_at=resets_at,
        )
        for name, limit, used, holding, resets_at in bounds
        if limit is not None
    ]


def refusal(left: BudgetLeft, need: Decimal | None, now: datetime) -> Refusal:
    """Why a call is refused (need: what it may use; None: nothing is left), naming the
    budget, and when it starts again."""
    unit = "tokens" if left.name.startswith("tokens") else "US dollars"
    spent = f"{plain(left.spent)} spent and {plain(left.held)} held by calls in progress"
    why = f"is used up: {spent}"
    if need is not None:
        why = f"would be crossed: {spent}, and a model call may use up to {plain(need)}"
    detail = (
        f"this key's budget {left.name} of {plain(left.limit)} {unit} {why}; it starts "
        f"again at {left.resets_at:%Y-%m-%dT%H:%M:%SZ}"
    )
    return Refusal(detail, max(math.ceil((left.resets_at - now).total_seconds()), 1))


def need(left: BudgetLeft, tokens: int, dollars: Decimal) -> Decimal:
    return Decimal(tokens) if left.name.startswith("tokens") else dollars
