"""Budgets per key: a model call that could cross one is refused before it is made.

Before each call a turn holds the most the call can cost, under its owner's lock, if what the
owner spent and holds leaves room (one statement, spend_hold, in the transaction a run opens
before each call anyway, or in its own for an interactive turn). The step that stores the
answer swaps the hold for the ledger row; a failed call lets its hold go; a dead process's hold
stops counting after spend.hold_seconds, or when the run's next attempt takes its own. An owner
with no budget takes no hold and costs no query.
"""

import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from genai_prices.types import TieredPrices
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agent.loop import Refusal
from app.config.sections import BudgetConfig
from app.config.settings import Settings
from app.core.db import utcnow
from app.core.metrics import Metrics
from app.llm.base import ChatMessage, Completion, ToolSpec, Usage
from app.spend import bounds
from app.spend.models import ModelCall
from app.spend.prices import Prices

# What the bound of a call's input adds to its bytes: per message and per tool (the roles
# and the framing the provider wraps them in) and per call (a provider's own tool prompt).
_PER_ITEM = 16
_PER_CALL = 1024


@dataclass(slots=True)
class Spending:
    """The process's part: prices, budgets, the ledger, and each turn's account."""

    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    metrics: Metrics
    prices: Prices = field(init=False)

    def __post_init__(self) -> None:
        self.prices = Prices(self.settings.config.spend.prices)

    def budget(self, owner: str) -> BudgetConfig | None:
        """The owner's budget, or None when it has no bound."""
        budget = self.settings.config.spend.budgets.of(owner)
        return budget if budget.bounded else None

    def account(self, owner: str, holder: uuid.UUID | None = None) -> "Account":
        """A turn's account: holder names its holds (a run's id; else a new one)."""
        return Account(self, owner, holder or uuid.uuid4(), self.budget(owner))

    def ledger_row(self, owner: str, completion: Completion) -> ModelCall:
        """The ledger row of one answered call, added in the transaction that stores the step:
        a resumed run neither records a call twice nor loses one it kept. A call whose answer
        was never stored (its process died) is missing, though the provider may have charged
        it; a failed call reported no usage and is not recorded."""
        cost = self.prices.cost(completion.provider, completion.model, completion.usage)
        if cost is not None:
            self.metrics.llm_cost.labels(completion.provider, completion.model).inc(float(cost))
        # The ledger's token columns are named as Usage's fields.
        return ModelCall(
            owner=owner,
            provider=completion.provider,
            model=completion.model,
            cost_usd=cost,
            created_at=utcnow(),
            **asdict(completion.usage),
        )

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
            if (price := self.prices.price(link.provider, link.model)) is not None:
                dearest_in = max(_top(price.input_mtok), _top(price.cache_write_mtok))
                out = _top(price.output_mtok)
                costs.append(usage.prompt_tokens * dearest_in + usage.completion_tokens * out)
        return max(costs) / 1_000_000


def _top(price: Decimal | TieredPrices | None) -> Decimal:
    """A price per million tokens at its highest tier."""
    if isinstance(price, TieredPrices):
        return max([price.base, *(tier.price for tier in price.tiers)])
    return price or Decimal(0)


@dataclass(slots=True)
class Account:
    """One turn's side of its owner's budget and ledger: its recorder's halt holds on the
    budget through it, its step settles the hold with a ledger row."""

    spending: Spending
    owner: str
    holder: uuid.UUID
    budget: BudgetConfig | None
    holding: bool = False

    async def check(self) -> Refusal | None:
        """Before a turn stores anything: a refusal if a budget has nothing left."""
        if self.budget is None:
            return None
        now = datetime.now(UTC)
        async with self.spending.sessionmaker() as session:
            found = await bounds.budget_left(session, self.owner, self.budget, now=now)
        spent = next((b for b in found if b.left <= 0), None)
        if spent is None:
            return None
        self.spending.metrics.budget_refusals.labels(spent.name).inc()
        return bounds.refusal(spent, None, now)

    async def admit(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]
    ) -> Refusal | None:
        """hold, in a transaction of its own (for a turn that opens none before each call)."""
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
        values = {
            "owner": self.owner,
            "holder": self.holder,
            "tokens": tokens,
            "cost_usd": dollars,
            "expires_at": now + timedelta(seconds=self.spending.settings.config.spend.hold_seconds),
            **bounds.windows(now),
            **{name: getattr(self.budget, name) for name in bounds.BOUNDS},
        }
        if await bounds.take_hold(await session.connection(), values) is not None:
            self.holding = True
            return None
        # No room: which bound, for the message (read under the lock, too).
        found = await bounds.budget_left(session, self.owner, self.budget, now=now)
        left = next(b for b in found if bounds.need(b, tokens, dollars) > b.left)
        self.spending.metrics.budget_refusals.labels(left.name).inc()
        return bounds.refusal(left, bounds.need(left, tokens, dollars), now)

    async def settle(self, session: AsyncSession, completion: Completion) -> None:
        """In the transaction that stores the call's answer: its ledger row for its hold."""
        if self.holding:
            await (await session.connection()).execute(bounds.RELEASE, {"holder": self.holder})
        session.add(self.spending.ledger_row(self.owner, completion))
        self.holding = False

    def ledger_values(self, completion: Completion) -> dict[str, Any]:
        """The ledger row's columns, for a write that stores it and drops the hold itself
        (a run's step: runs/writing.py)."""
        row = self.spending.ledger_row(self.owner, completion)
        return {c.key: getattr(row, c.key) for c in ModelCall.__table__.c if c.key != "id"}

    async def record(self, completion: Completion) -> None:
        """settle, in a transaction of its own (a turn that stores no steps)."""
        async with self.spending.sessionmaker() as session:
            await self.settle(session, completion)
            await session.commit()

    async def release(self) -> None:
        if self.holding:
            async with self.spending.sessionmaker() as session:
                await (await session.connection()).execute(bounds.RELEASE, {"holder": self.holder})
                await session.commit()
            self.holding = False
