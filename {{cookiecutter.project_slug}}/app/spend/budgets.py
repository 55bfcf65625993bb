"""Budgets per key: a model call that could cross one is refused before it is made.

Before each call a turn holds an upper bound of what the call can cost, under a lock on its
owner, if what the owner spent and holds leaves room for it: one statement (the database
function spend_hold), in the transaction a run already opens before each model call, or in
one of its own for an interactive turn. The step that stores the answer replaces the hold
with the ledger row, in its own transaction; a call that fails lets its hold go; a hold whose
process died stops counting after spend.hold_seconds, and a run's next attempt drops its dead
attempt's hold when it takes its own. With no budget for an owner, its calls take no hold and
cost no query.
"""

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from genai_prices.types import TieredPrices
from sqlalchemy import (
    BigInteger,
    DateTime,
    Numeric,
    Subquery,
    Table,
    Text,
    Uuid,
    bindparam,
    delete,
    func,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.types import TypeEngine

from app.agent.loop import Refusal
from app.config.sections import BudgetConfig
from app.config.settings import Settings
from app.core.metrics import Metrics
from app.llm.base import ChatMessage, Completion, ToolSpec, Usage
from app.spend.ledger import Ledger
from app.spend.models import Hold, ModelCall
from app.spend.prices import Prices
from app.spend.schemas import BudgetLeft

# What the bound of a call's input adds to its bytes: per message and per tool (the roles
# and the framing the provider wraps them in) and per call (a provider's own tool prompt).
_PER_ITEM = 16
_PER_CALL = 1024


@dataclass(frozen=True, slots=True)
class Spending:
    """The process's part: prices, budgets, the ledger, and each turn's account."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    metrics: Metrics
    ledger: Ledger

    @classmethod
    def of(
        cls, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession], metrics: Metrics
    ) -> "Spending":
        ledger = Ledger(Prices(settings.config.spend.prices), metrics)
        return cls(settings, sessionmaker, metrics, ledger)

    def budget(self, owner: str) -> BudgetConfig | None:
        """The owner's budget, or None when it has no bound."""
        budget = self.settings.config.spend.budgets.of(owner)
        return budget if budget.bounded else None

    def account(self, owner: str, holder: uuid.UUID | None = None) -> "Account":
        """A turn's account: holder names its holds (a run's id; else a new one)."""
        return Account(self, owner, holder or uuid.uuid4(), self.budget(owner), self.ledger)

    def bound(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> Usage:
        """The most a call can use: every byte sent a token (no tokenizer makes more of
        them), plus framing; llm.max_tokens out."""
        sent = sum(
            len(m.content.encode())
            + sum(len(c.name) + len(c.arguments.encode()) + len(c.id) for c in m.tool_calls)
            + _PER_ITEM
            for m in messages
        )
        offered = sum(
            len(t.name) + len(t.description.encode()) + len(repr(t.parameters)) + _PER_ITEM
            for t in tools
        )
        return Usage(sent + offered + _PER_CALL, self.settings.config.llm.max_tokens)

    def dearest(self, usage: Usage) -> Decimal:
        """What the call could cost on the dearest model of the chain (any may answer): its
        input at the model's dearest input price (uncached, cache write, a higher tier)."""
        costs = [Decimal(0)]
        for link in self.settings.config.llm.chain:
            if (price := self.ledger.prices.price(link.provider, link.model)) is not None:
                dearest_in = max(_top(price.input_mtok), _top(price.cache_write_mtok))
                out = _top(price.output_mtok)
                costs.append(usage.prompt_tokens * dearest_in + usage.completion_tokens * out)
        return max(costs) / 1_000_000


def _top(price: Decimal | TieredPrices | None) -> Decimal:
    """A price per million tokens at its highest tier."""
    if isinstance(price, TieredPrices):
        return max([price.base, *(tier.price for tier in price.tiers)])
    return price or Decimal(0)


@dataclass(frozen=True, slots=True)
class Window:
    """A budget's span: today (UTC) or this calendar month."""

    start: datetime
    end: datetime

    @classmethod
    def day(cls, now: datetime) -> "Window":
        start = datetime(now.year, now.month, now.day, tzinfo=UTC)
        return cls(start, start + timedelta(days=1))

    @classmethod
    def month(cls, now: datetime) -> "Window":
        start = datetime(now.year, now.month, 1, tzinfo=UTC)
        following = (start + timedelta(days=32)).replace(day=1)
        return cls(start, following)


BOUNDS = ("tokens_per_day", "tokens_per_month", "usd_per_day", "usd_per_month")


# The statements of this module are built once and take their values as parameters: a
# statement built per call is walked for its cache key on every call.
def _spent() -> Subquery:
    """What the owner's ledger holds for today and this month, by bound name."""
    tokens = ModelCall.prompt_tokens + ModelCall.completion_tokens
    today = ModelCall.created_at >= bindparam("day_start")
    return (
        select(
            func.coalesce(func.sum(tokens).filter(today), 0).label("tokens_per_day"),
            func.coalesce(func.sum(ModelCall.cost_usd).filter(today), 0).label("usd_per_day"),
            func.coalesce(func.sum(tokens), 0).label("tokens_per_month"),
            func.coalesce(func.sum(ModelCall.cost_usd), 0).label("usd_per_month"),
        )
        .where(
            ModelCall.owner == bindparam("owner"), ModelCall.created_at >= bindparam("month_start")
        )
        .subquery()
    )


def _held() -> Subquery:
    """What the owner's calls in progress hold."""
    return (
        select(
            func.coalesce(func.sum(Hold.tokens), 0).label("tokens"),
            func.coalesce(func.sum(Hold.cost_usd), 0).label("usd"),
        )
        .where(Hold.owner == bindparam("owner"), Hold.expires_at > bindparam("now"))
        .subquery()
    )


_SPENT, _HELD = _spent(), _held()
_LEFT = select(_SPENT, _HELD).select_from(_SPENT.join(_HELD, true()))


def hold_table() -> Table:
    # The table itself, not the ORM class: these statements need none of the ORM's work
    # (synchronising a session, loading objects), which would cost more than the SQL.
    return cast(Table, Hold.__table__)


# The hold, in one statement: the database function spend_hold (migration 0009) takes the
# owner's lock, then inserts the holder's hold only if every bound has room for it beside what
# the owner spent and its other calls hold (replacing an earlier hold of the holder's: a run's
# attempt that died); it returns the hold's id, or NULL when a bound has none. A function, so
# that its insert reads the sums only once the lock is this call's (each statement of a
# function takes its own snapshot) and the whole costs one round trip.
# Typed as the function declares them (asyncpg sends each parameter as its type).
_HOLD_TYPES: dict[str, TypeEngine[Any]] = {
    "owner": Text(),
    "holder": Uuid(),
    "tokens": BigInteger(),
    "cost_usd": Numeric(),
    "expires_at": DateTime(timezone=True),
    "now": DateTime(timezone=True),
    "day_start": DateTime(timezone=True),
    "month_start": DateTime(timezone=True),
    "tokens_per_day": BigInteger(),
    "tokens_per_month": BigInteger(),
    "usd_per_day": Numeric(),
    "usd_per_month": Numeric(),
}
_HOLD_ARGUMENTS = (
    "owner",
    "holder",
    "tokens",
    "cost_usd",
    "expires_at",
    "now",
    "day_start",
    "month_start",
    *BOUNDS,
)
_HOLD = select(
    func.spend_hold(*(bindparam(name, type_=_HOLD_TYPES[name]) for name in _HOLD_ARGUMENTS))
)
_RELEASE = delete(hold_table()).where(hold_table().c.holder == bindparam("holder"))


async def _take_hold(connection: AsyncConnection, values: dict[str, Any]) -> int | None:
    """The hold's id, or None when a bound has no room for it."""
    taken: int | None = await connection.scalar(_HOLD, values)
    return taken


def _windows(now: datetime) -> dict[str, datetime]:
    return {"now": now, "day_start": Window.day(now).start, "month_start": Window.month(now).start}


async def budget_left(
    session: AsyncSession, owner: str, budget: BudgetConfig, *, now: datetime | None = None
) -> list[BudgetLeft]:
    """Each bound of the budget: its limit, what was spent and is held, what is left."""
    now = now or datetime.now(UTC)
    day, month = Window.day(now), Window.month(now)
    row = (await session.execute(_LEFT, {"owner": owner, **_windows(now)})).one()
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
            resets_at=window.end,
        )
        for name, limit, used, holding, window in bounds
        if limit is not None
    ]


def refusal(left: BudgetLeft, need: Decimal | None, now: datetime) -> Refusal:
    """Why a call is refused (need: what it may use; None: nothing is left), naming the
    budget, and when it starts again."""
    unit = "tokens" if left.name.startswith("tokens") else "US dollars"
    spent = f"{_plain(left.spent)} spent and {_plain(left.held)} held by calls in progress"
    why = (
        f"is used up: {spent}"
        if need is None
        else (f"would be crossed: {spent}, and a model call may use up to {_plain(need)}")
    )
    detail = (
        f"this key's budget {left.name} of {_plain(left.limit)} {unit} {why}; it starts "
        f"again at {left.resets_at:%Y-%m-%dT%H:%M:%SZ}"
    )
    return Refusal(detail, max(math.ceil((left.resets_at - now).total_seconds()), 1))


def _need(left: BudgetLeft, tokens: int, dollars: Decimal) -> Decimal:
    return Decimal(tokens) if left.name.startswith("tokens") else dollars


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


@dataclass(slots=True)
class Account:
    """One turn's side of its owner's budget and ledger: its recorder's halt holds on the
    budget through it, its step settles the hold with a ledger row."""

    spending: Spending
    owner: str
    holder: uuid.UUID
    budget: BudgetConfig | None
    ledger: Ledger
    holding: bool = False

    async def check(self) -> Refusal | None:
        """Before a turn stores anything: a refusal if a budget has nothing left."""
        if self.budget is None:
            return None
        now = datetime.now(UTC)
        async with self.spending.sessionmaker() as session:
            bounds = await budget_left(session, self.owner, self.budget, now=now)
        spent = next((b for b in bounds if b.left <= 0), None)
        if spent is None:
            return None
        self.spending.metrics.budget_refusals.labels(spent.name).inc()
        return refusal(spent, None, now)

    async def admit(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> Refusal | None:
        """hold, in a transaction of its own (a turn whose steps have no transaction before
        each model call)."""
        if self.budget is None:
            return None
        async with self.spending.sessionmaker() as session:
            refused = await self.hold(session, messages, tools)
            await session.commit()
        return refused

    async def hold(
        self, session: AsyncSession, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> Refusal | None:
        """In the caller's transaction: hold the most the call can cost, or say which bound
        has no room for it. One owner's holds are taken one at a time (the owner's lock, held
        to the transaction's end): two calls cannot both take the last of a budget."""
        if self.budget is None:
            return None
        bound = self.spending.bound(messages, tools)
        tokens = bound.prompt_tokens + bound.completion_tokens
        dollars = self.spending.dearest(bound) if self.budget.in_dollars else Decimal(0)
        now = datetime.now(UTC)
        hold_for = timedelta(seconds=self.spending.settings.config.spend.hold_seconds)
        values = {
            "owner": self.owner,
            "holder": self.holder,
            "tokens": tokens,
            "cost_usd": dollars,
            "expires_at": now + hold_for,
            **_windows(now),
            **{name: getattr(self.budget, name) for name in BOUNDS},
        }
        if await _take_hold(await session.connection(), values) is not None:
            self.holding = True
            return None
        # No room: which bound, for the message (read under the lock, too).
        found = await budget_left(session, self.owner, self.budget, now=now)
        left = next(b for b in found if _need(b, tokens, dollars) > b.left)
        self.spending.metrics.budget_refusals.labels(left.name).inc()
        return refusal(left, _need(left, tokens, dollars), now)

    async def settle(self, session: AsyncSession, completion: Completion) -> None:
        """In the transaction that stores the call's answer: its ledger row for its hold."""
        session.add(self.ledger.row(self.owner, completion))
        if self.holding:
            await (await session.connection()).execute(_RELEASE, {"holder": self.holder})
            self.holding = False

    def settle_released(self, session: AsyncSession, completion: Completion) -> None:
        """settle, when the caller's transaction deletes the hold itself (a run's step)."""
        session.add(self.ledger.row(self.owner, completion))
        self.holding = False

    async def record(self, completion: Completion) -> None:
        """settle, in a transaction of its own (a turn that stores no steps)."""
        async with self.spending.sessionmaker() as session:
            await self.settle(session, completion)
            await session.commit()

    async def release(self) -> None:
        if not self.holding:
            return
        async with self.spending.sessionmaker() as session:
            await (await session.connection()).execute(_RELEASE, {"holder": self.holder})
            await session.commit()
        self.holding = False
