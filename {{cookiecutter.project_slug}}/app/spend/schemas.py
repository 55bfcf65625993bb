"""Usage API shapes. Dollar amounts are decimal strings: a float would round them."""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, PlainSerializer

# The longest span one report covers, in days.
MAX_DAYS = 92


def plain(value: Decimal) -> str:
    """As "0.00000285" or "0": no exponent, no trailing zeros of the column's scale."""
    return format(value.normalize(), "f")


Dollars = Annotated[Decimal, PlainSerializer(plain, return_type=str)]


class ModelDay(BaseModel):
    """One model's calls on one day (UTC)."""

    day: date
    provider: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Dollars
    # Calls of a model with no known price: in the tokens, not in cost_usd (spend.prices).
    unpriced_calls: int


class BudgetLeft(BaseModel):
    """One bound of the caller's budget (spend.budgets): tokens or US dollars, per UTC day
    or calendar month, and what is left of it now."""

    name: Literal["tokens_per_day", "tokens_per_month", "usd_per_day", "usd_per_month"]
    limit: Dollars
    spent: Dollars
    # Taken by model calls in progress, each at the most it may cost until it ends.
    held: Dollars
    left: Dollars
    resets_at: datetime


class UsageReport(BaseModel):
    """The caller's model calls since `since` (UTC), by day and model, newest first; and
    its budget (none: no bound)."""

    since: date
    days: list[ModelDay]
    cost_usd: Dollars
    budgets: list[BudgetLeft] = []
