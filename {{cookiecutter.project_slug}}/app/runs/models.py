"""Run and run-event tables: PostgreSQL holds a run's state; Redis only carries the wake-up."""

import uuid
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, CreatedAtMixin, IdMixin, OwnedMixin
from app.llm.base import OutputFormat, ToolCall, ToolSpec, Usage

# awaiting_approval: stopped at tool calls a person must decide on (no lease, no worker).
Status = Literal["queued", "running", "awaiting_approval", "succeeded", "failed", "cancelled"]
STATUSES: tuple[str, ...] = get_args(Status)
FINISHED = frozenset({"succeeded", "failed", "cancelled"})


class Run(IdMixin, CreatedAtMixin, OwnedMixin, Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        # The workers' sweep: runs whose lease ran out, and queued runs nobody took.
        Index("ix_runs_status_lease_until", "status", "lease_until"),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(32), default="queued")
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    # Claims so far; a claim whose lease runs out (a worker killed) is retried up to
    # worker.max_attempts, then the run fails.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    # Who answered the run's latest model step (a fallback may have).
    provider: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(200))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Tool calls that need approval, by call id: {"name", "arguments", "approved"}, approved
    # null until a person decides. An entry goes when its call's result is stored, so a
    # later call that reuses the id is asked about again.
    approvals: Mapped[dict[str, dict[str, Any]]] = mapped_column(
        JSONB, default=dict, server_default=text("'{}'::jsonb")
    )
    # Set by an OpenAI Responses request: the functions the client runs itself ({"name",
    # "description", "parameters"} each), the JSON schema its answer holds to ({"name",
    # "schema", "strict"}), instructions added to the system prompt for this run only, the
    # run whose response it continues, and whether the client waits for it (background false).
    client_tools: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb")
    )
    output_format: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    instructions: Mapped[str | None] = mapped_column(Text)
    previous_run_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL")
    )
    background: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))

    @property
    def usage(self) -> Usage:
        return Usage(self.prompt_tokens, self.completion_tokens)

    @property
    def client_specs(self) -> list[ToolSpec]:
        return [ToolSpec(t["name"], t["description"], t["parameters"]) for t in self.client_tools]

    @property
    def output(self) -> OutputFormat | None:
        if self.output_format is None:
            return None
        return OutputFormat(**self.output_format)

    @property
    def pending_approvals(self) -> list[ToolCall]:
        return [
            ToolCall(call_id, entry["name"], entry["arguments"])
            for call_id, entry in self.approvals.items()
            if entry["approved"] is None
        ]


class RunEvent(Base):
    """What a run did, in order; the id is the SSE event id a client resumes from."""

    __tablename__ = "run_events"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
