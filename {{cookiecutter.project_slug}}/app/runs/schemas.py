"""Run API shapes."""

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from app.agent.loop import StopReason
from app.conversations.schemas import UsageOut


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    stop_reason: StopReason | None
    error: str | None
    attempts: int
    cancel_requested: bool
    usage: UsageOut
    created_at: datetime
    finished_at: datetime | None
