"""The ledger: one row per model call that answered, under the owner whose turn made it."""

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, OwnedMixin


class ModelCall(OwnedMixin, Base):
    __tablename__ = "model_calls"
    # Serves the usage report and budgets: one owner's calls over a span of days.
    __table_args__ = (Index("ix_model_calls_owner_created_at", "owner", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    # prompt_tokens counts every input token; the cache ones are the part of it read from,
    # and written to, the provider's prompt cache.
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cache_read_tokens: Mapped[int] = mapped_column(Integer)
    cache_write_tokens: Mapped[int] = mapped_column(Integer)
    # In US dollars; NULL when no price is known for the model (spend.prices can give one).
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(20, 10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
