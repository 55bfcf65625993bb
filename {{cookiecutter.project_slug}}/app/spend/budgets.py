"""Budgets per key: a model call that could cross one is refused before it is made.

Before each call a turn holds an upper bound of what the call can cost, under a lock on its
owner, if what the owner spent and holds leaves room for it. The step that stores the answer
replaces the hold with the ledger row, in its own transaction; a call that fails lets its
hold go; a hold whose process died stops counting after spend.hold_seconds, and a run's next
attempt drops its dead attempt's hold when it takes its own. With no budget for an owner,
its calls take no hold and cost no query.
"""

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, delete, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agent.loop import Refusal
from app.config.sections import BudgetConfig
from app.config.settings import Settings
from app.core.metrics import Metrics
from app.llm.base import ChatMessage, Completion, ToolSpec, Usage
from app.spend.ledger import Ledger
from app.spend.models import Hold, ModelCall
from app.spend.prices import Prices
from app.spend.schemas import BudgetLeft

# The first key of the owner's advisory lock (the second is a hash of the owner): apart
# from any other advisory lock the database may take.
_LOCKS = 0x5BE7D
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
        budgets = self.settings.config.spend.budgets
        named = budgets.keys.get(owner)
        budget = named.over(budgets.default) if named is not None else budgets.default
        return budget if budget.model_dump(exclude_none=True) else None

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
        tokens_in = sent + offered + _PER_CALL
        # Priced at the dearer of input and prompt-cache write, whichever the provider bills.
        return Usage(tokens_in, self.settings.config.llm.max_tokens, cache_write_tokens=tokens_in)

    def dearest(self, usage: Usage) -> Decimal:
        """What the call could cost on the dearest model of the chain (any may answer)."""
        llm = self.settings.config.llm
        chain = [(llm.provider, llm.model), *((f.provider, f.model) for f in llm.fallbacks)]
        prices = self.ledger.prices
        uncached = Usage(usage.prompt_tokens, usage.completion_tokens)
        costs = [
            prices.cost(provider, model, priced) or Decimal(0)
            for provider, model in chain
            for priced in (usage, uncached)
        ]
        return max(costs)


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


async def budget_left(
    session: AsyncSession, owner: str, budget: BudgetConfig, *, now: datetime | None = None
) -> list[BudgetLeft]:
    """Each bound of the budget: its limit, what was spent and is held, what is left."""
    now = now or datetime.now(UTC)
    day, month = Window.day(now), Window.month(now)
    tokens = ModelCall.prompt_tokens + ModelCall.completion_tokens
    today = ModelCall.created_at >= day.start
    spent = (
        select(
            func.coalesce(func.sum(tokens).filter(today), 0).label("tokens_day"),
            func.coalesce(func.sum(ModelCall.cost_usd).filter(today), 0).label("usd_day"),
            func.coalesce(func.sum(tokens), 0).label("tokens_month"),
            func.coalesce(func.sum(ModelCall.cost_usd), 0).label("usd_month"),
        )
        .where(ModelCall.owner == owner, ModelCall.created_at >= month.start)
        .subquery()
    )
    held = (
        select(
            func.coalesce(func.sum(Hold.tokens), 0).label("tokens"),
            func.coalesce(func.sum(Hold.cost_usd), 0).label("usd"),
        )
        .where(Hold.owner == owner, Hold.expires_at > now)
        .subquery()
    )
    row = (await session.execute(select(spent, held).select_from(spent.join(held, true())))).one()
    # A call in progress counts against today and this month alike.
    bounds = [
        ("tokens_per_day", budget.tokens_per_day, row.tokens_day, row.tokens, day),
        ("tokens_per_month", budget.tokens_per_month, row.tokens_month, row.tokens, month),
        ("usd_per_day", budget.usd_per_day, row.usd_day, row.usd, day),
        ("usd_per_month", budget.usd_per_month, row.usd_month, row.usd, month),
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


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


@dataclass(slots=True)
class Account:
    """One turn's side of its owner's budget (app.agent.loop.Budget) and ledger."""

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
        if self.budget is None:
            return None
        bound = self.spending.bound(messages, tools)
        tokens = bound.prompt_tokens + bound.completion_tokens
        dollars = self.spending.dearest(bound) if self.budget.in_dollars else Decimal(0)
        now = datetime.now(UTC)
        async with self.spending.sessionmaker() as session:
            # One owner's holds are taken one at a time: two calls cannot both take the
            # last of a budget. Owners apart do not wait for each other.
            await session.execute(
                select(func.pg_advisory_xact_lock(_LOCKS, func.hashtext(self.owner)))
            )
            expired = and_(Hold.owner == self.owner, Hold.expires_at <= now)
            await session.execute(delete(Hold).where(or_(Hold.holder == self.holder, expired)))
            for left in await budget_left(session, self.owner, self.budget, now=now):
                need = Decimal(tokens) if left.name.startswith("tokens") else dollars
                if need > left.left:
                    await session.commit()
                    self.spending.metrics.budget_refusals.labels(left.name).inc()
                    return refusal(left, need, now)
            hold_for = timedelta(seconds=self.spending.settings.config.spend.hold_seconds)
            session.add(
                Hold(
                    owner=self.owner,
                    holder=self.holder,
                    tokens=tokens,
                    cost_usd=dollars,
                    expires_at=now + hold_for,
                )
            )
            await session.commit()
        self.holding = True
        return None

    async def settle(self, session: AsyncSession, completion: Completion) -> None:
        """In the transaction that stores the call's answer: its ledger row for its hold."""
        session.add(self.ledger.row(self.owner, completion))
        if self.holding:
            await session.execute(delete(Hold).where(Hold.holder == self.holder))
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
            await session.execute(delete(Hold).where(Hold.holder == self.holder))
            await session.commit()
        self.holding = False
