"""Run API shapes."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.agent.loop import StopReason
from app.conversations.schemas import ToolCallOut, UsageOut
from app.runs.models import Status

# Decisions one request may carry; a run waiting on more takes several requests.
MAX_DECISIONS = 100


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    status: Status
    # budget_exceeded: a model call was refused by the key's budget (status failed; the
    # steps stored before it stay).
    stop_reason: StopReason | Literal["budget_exceeded"] | None
    error: str | None
    attempts: int
    cancel_requested: bool
    # The tool calls waiting for a decision (POST /v1/runs/{id}/approvals).
    pending_approvals: list[ToolCallOut]
    # Who answered the run's latest model step (with llm.fallbacks, not always the first).
    provider: str | None
    model: str | None
    usage: UsageOut
    created_at: datetime
    finished_at: datetime | None


class ApprovalDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The id of a call listed in the run's pending_approvals.
    tool_call_id: str = Field(min_length=1, max_length=100)
    approved: bool


class Approvals(BaseModel):
    """Decisions on tool calls a run waits on; calls not named here keep waiting."""

    model_config = ConfigDict(extra="forbid")

    decisions: list[ApprovalDecision] = Field(min_length=1, max_length=MAX_DECISIONS)
