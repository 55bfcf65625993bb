"""Health report shapes."""

from typing import Literal

from pydantic import BaseModel

CheckStatus = Literal["connected", "disconnected"]


class CheckResult(BaseModel):
    status: CheckStatus
    latency_ms: float
    error: str | None = None


class HealthReport(BaseModel):
    status: Literal["healthy", "unhealthy"]
    database: CheckStatus
    redis: CheckStatus
    version: str
    checks: dict[str, CheckResult]


class Liveness(BaseModel):
    status: Literal["alive"]
