"""Usage API shapes. Dollar amounts are decimal strings: a float would round them."""

from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, PlainSerializer

# The longest span one report covers, in days.
MAX_DAYS = 92
# "0.00000285", "0": no exponent, no trailing zeros of the column's scale.
Dollars = Annotated[
    Decimal, PlainSerializer(lambda value: format(value.normalize(), "f"), return_type=str)
]


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


class UsageReport(BaseModel):
    """The caller's model calls since `since` (UTC), by day and model, newest first."""

    since: date
    days: list[ModelDay]
    cost_usd: Dollars
