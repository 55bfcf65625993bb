"""The ledger: one row per model call that answered, under the owner whose turn made it; its
sums per owner, day and model, which budgets and the usage report read; and the holds of the
calls in progress on their owner's budgets."""

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Identity,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, OwnedMixin


class ModelCall(OwnedMixin, Base):
    __tablename__ = "model_calls"
    # Serves the usage report and budgets: one owner's calls over a span of days.
    __table_args__ = (Index("ix_model_calls_owner_created_at", "owner", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    # As in Usage: prompt_tokens counts every input token, the cached ones included.
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cache_read_tokens: Mapped[int] = mapped_column(Integer)
    cache_write_tokens: Mapped[int] = mapped_column(Integer)
    # In US dollars; NULL when no price is known for the model (spend.prices can give one).
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(20, 10))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SpendDay(OwnedMixin, Base):
    """An owner's ledger summed for one UTC day and model: what budgets and the usage report
    read. The database keeps it (triggers on model_calls, migration 0012), equal to the
    ledger whatever writes, moves or deletes its rows: nothing in the app writes it. A budget
    reads a month's rows, at most 31 per model, where summing the ledger's rows under the
    owner's lock grew with every call."""

    __tablename__ = "spend_days"
    __table_args__ = (PrimaryKeyConstraint("owner", "day", "provider", "model"),)

    day: Mapped[date] = mapped_column(Date)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    calls: Mapped[int] = mapped_column(BigInteger)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(20, 10))
    unpriced_calls: Mapped[int] = mapped_column(BigInteger)


class Hold(OwnedMixin, Base):
    """What a model call in progress may cost, held against its owner's budgets until the
    step that stores its answer replaces it with a ledger row (spend.budgets)."""

    __tablename__ = "spend_holds"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The turn holding it: a run's id (its next attempt drops a dead one's hold), or an
    # interactive turn's own. A turn makes one model call at a time, so holds one at most.
    holder: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(20, 10))
    # A hold whose process died stops counting then, and is deleted by the next hold.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (Index("ix_spend_holds_owner_expires_at", "owner", "expires_at"),)
