"""The usage report: an owner's ledger summed by day and model."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.spend.models import ModelCall
from app.spend.schemas import ModelDay, UsageReport


async def usage_report(*, session: AsyncSession, owner: str, days: int) -> UsageReport:
    """The owner's calls of the last `days` days (today, UTC, is the first)."""
    since = datetime.now(UTC).date() - timedelta(days=days - 1)
    day = cast(func.timezone("UTC", ModelCall.created_at), Date).label("day")
    rows = await session.execute(
        select(
            day,
            ModelCall.provider,
            ModelCall.model,
            func.count().label("calls"),
            func.sum(ModelCall.prompt_tokens).label("prompt_tokens"),
            func.sum(ModelCall.completion_tokens).label("completion_tokens"),
            func.sum(ModelCall.cache_read_tokens).label("cache_read_tokens"),
            func.sum(ModelCall.cache_write_tokens).label("cache_write_tokens"),
            func.coalesce(func.sum(ModelCall.cost_usd), 0).label("cost_usd"),
            func.count().filter(ModelCall.cost_usd.is_(None)).label("unpriced_calls"),
        )
        .where(
            ModelCall.owner == owner,
            ModelCall.created_at >= datetime.combine(since, datetime.min.time(), UTC),
        )
        .group_by(day, ModelCall.provider, ModelCall.model)
        .order_by(day.desc(), ModelCall.provider, ModelCall.model)
    )
    found = [ModelDay.model_validate(row, from_attributes=True) for row in rows]
    return UsageReport(
        since=since, days=found, cost_usd=sum((d.cost_usd for d in found), Decimal(0))
    )
