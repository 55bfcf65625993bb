"""Health endpoints: /health checks dependencies, /health/live only the process."""

from fastapi import APIRouter, Response, status

from app.core.metadata import project_metadata
from app.deps import ResourcesDep, SettingsDep
from app.health.schemas import HealthReport, Liveness
from app.health.service import run_checks

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": HealthReport}},
)
async def health(
    resources: ResourcesDep, settings: SettingsDep, response: Response
) -> HealthReport:
    """Check the database and Redis; 503 when any check fails."""
    checks = await run_checks(resources, settings.config.health.timeout_seconds)
    healthy = all(check.status == "connected" for check in checks.values())
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthReport(
        status="healthy" if healthy else "unhealthy",
        database=checks["database"].status,
        redis=checks["redis"].status,
        version=project_metadata()[1],
        checks=checks,
    )


@router.get("/health/live")
async def live() -> Liveness:
    """Answer while the process runs; calls no dependency."""
    return Liveness(status="alive")
