"""Per-owner rate limiting: a moving window in Redis, kept by the `limits` library."""

import asyncio
import logging
import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.config.sections import RateLimitConfig
from app.core.metrics import Metrics

logger = logging.getLogger(__name__)
KEY_PREFIX = "ratelimit"


class RateLimiter:
    """At most `requests` per owner in any `window_seconds`, not just per calendar window: a
    fixed window would let a client through at twice its rate across a window's edge."""

    def __init__(
        self, redis: "Redis", redis_url: str, config: RateLimitConfig, metrics: Metrics
    ) -> None:
        # The api's own Redis pool (and its short timeouts) serves the limiter too.
        storage = RedisStorage(
            f"async+{redis_url}",
            implementation="redispy",
            # Documented by limits, but its signature types options as scalars only.
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
            key_prefix=KEY_PREFIX,
            wrap_exceptions=True,
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._item = RateLimitItemPerSecond(config.requests, config.window_seconds)
        self._metrics = metrics

    async def check(self, owner: str, *, budget: float) -> int | None:
        """Count this request for the owner: None if allowed, else the seconds to wait. Fails
        open, allowed with a warning, while Redis is unreachable or slow: an outage of the
        limiter should not take the whole api down."""
        try:
            async with asyncio.timeout(budget):
                if await self._limiter.hit(self._item, owner):
                    return None
                stats = await self._limiter.get_window_stats(self._item, owner)
        except (StorageError, RedisError, OSError, TimeoutError):
            self._metrics.redis_error("rate_limit")
            logger.warning("rate limiter unavailable; request allowed", extra={"owner": owner})
            return None
        self._metrics.rate_limit_rejections.inc()
        return max(1, math.ceil(stats.reset_time - time.time()))
