"""The usage report: an owner's ledger summed by day and model (spend_days)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.spend.models import SpendDay
from app.spend.schemas import ModelDay, UsageReport

# The report's columns, as ModelDay names them; a model's day whose calls all left (moved to
# another key, deleted) stays behind empty and is not reported.
_REPORT = (
    select(
        SpendDay.day,
        SpendDay.provider,
        SpendDay.model,
        SpendDay.calls,
        SpendDay.prompt_tokens,
        SpendDay.completion_tokens,
        SpendDay.cache_read_tokens,
        SpendDay.cache_write_tokens,
        SpendDay.cost_usd,
        SpendDay.unpriced_calls,
    )
    .where(SpendDay.calls > 0)
    .order_by(SpendDay.day.desc(), SpendDay.provider, SpendDay.model)
)


async def usage_report(*, session: AsyncSession, owner: str, days: int) -> UsageReport:
    """The owner's calls of the last `days` days (today, UTC, is the first)."""
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    rows = await session.execute(_REPORT.where(SpendDay.owner == owner, SpendDay.day >= since))
    found = [ModelDay.model_validate(row, from_attributes=True) for row in rows]
    return UsageReport(
        since=since, days=found, cost_usd=sum((d.cost_usd for d in found), Decimal(0))
    )
