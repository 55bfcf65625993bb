"""Per-owner fixed-window rate limiting in Redis."""

import asyncio
import logging
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.config import RateLimitConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0


async def check_rate_limit(
    redis: "Redis", *, owner: str, config: RateLimitConfig, budget: float
) -> Verdict:
    """Count this request in the current window.

    Fails open: while Redis is unreachable requests are allowed and a warning is logged,
    because an outage of the limiter should not take the whole API down.
    """
    window = int(time.time()) // config.window_seconds
    bucket = f"ratelimit:{owner}:{window}"
    try:
        async with asyncio.timeout(budget):
            async with redis.pipeline(transaction=True) as pipe:
                pipe.incr(bucket)
                pipe.expire(bucket, config.window_seconds, nx=True)
                count, _ = await pipe.execute()
    except (RedisError, OSError, TimeoutError):
        logger.warning("rate limiter unavailable; request allowed", extra={"owner": owner})
        return Verdict(allowed=True)
    if int(count) <= config.requests:
        return Verdict(allowed=True)
    retry_after = (window + 1) * config.window_seconds - int(time.time())
    return Verdict(allowed=False, retry_after=max(retry_after, 1))
