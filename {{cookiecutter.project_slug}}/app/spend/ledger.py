"""Every model step a turn stores is written to its owner's ledger, with its cost.

A stored turn writes its ledger row in the transaction that stores the step: a run resumed
after its worker died neither records a call twice nor loses one it kept. A call whose
answer was never stored (its process died first) is not in the ledger, though the provider
may have charged it; a call that failed reported no usage and is not recorded either.
"""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import utcnow
from app.core.metrics import Metrics
from app.llm.base import Completion
from app.spend.models import ModelCall
from app.spend.prices import Prices


@dataclass(frozen=True, slots=True)
class Ledger:
    prices: Prices
    metrics: Metrics

    def row(self, owner: str, completion: Completion) -> ModelCall:
        """The ledger row of one answered call, for the caller to add to its transaction."""
        usage = completion.usage
        cost = self.prices.cost(completion.provider, completion.model, usage)
        if cost is not None:
            self.metrics.llm_cost.labels(completion.provider, completion.model).inc(float(cost))
        return ModelCall(
            owner=owner,
            provider=completion.provider,
            model=completion.model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cost_usd=cost,
            created_at=utcnow(),
        )

    async def record(
        self, sessionmaker: async_sessionmaker[AsyncSession], owner: str, completion: Completion
    ) -> None:
        """Write one call's row in a transaction of its own (a turn that stores no steps)."""
        async with sessionmaker() as session:
            session.add(self.row(owner, completion))
            await session.commit()
