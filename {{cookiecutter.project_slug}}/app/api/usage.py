"""What the caller's model calls cost: GET /v1/usage."""

from typing import Annotated

from fastapi import APIRouter, Query

from app.deps import OwnerDep, SessionDep, TurnsDep
from app.spend.bounds import budget_left
from app.spend.schemas import MAX_DAYS, UsageReport
from app.spend.service import usage_report

router = APIRouter(tags=["usage"])


@router.get("/usage")
async def get_usage(
    session: SessionDep,
    owner: OwnerDep,
    turns: TurnsDep,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="Days back, today (UTC) first")] = 30,
) -> UsageReport:
    """The caller's model calls by day and model: tokens, and cost in US dollars; and what
    is left of its budget (spend.budgets) today and this month."""
    report = await usage_report(session=session, owner=owner, days=days)
    if (budget := turns.spending.budget(owner)) is not None:
        report.budgets = await budget_left(session, owner, budget)
    return report
