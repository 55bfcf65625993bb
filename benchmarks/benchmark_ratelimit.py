"""Measure what one rate-limit check costs: the generated api's moving window (`limits`)
against the fixed window it replaced, on a real Redis started from the machine's binaries.

    uv run --locked python -m benchmarks.benchmark_ratelimit

Prints the median and 99th percentile of one check, allowed and refused, for each strategy.
Results go into docs/performance.md by hand; no test asserts them.
"""

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis

from tests.harness.redis_server import start_redis

CHECKS = 5000
WINDOW_SECONDS = 60


async def fixed_window(redis: "Redis", owner: str, limit: int) -> bool:
    """The limiter the template had before: INCR and EXPIRE of a per-window counter."""
    window = int(time.time()) // WINDOW_SECONDS
    bucket = f"fixed:{owner}:{window}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(bucket)
        pipe.expire(bucket, WINDOW_SECONDS, nx=True)
        count, _ = await pipe.execute()
    return int(count) <= limit


async def timed(check: Callable[[str], Awaitable[bool]], owner: str) -> list[float]:
    samples = []
    for _ in range(CHECKS):
        started = time.perf_counter()
        await check(owner)
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def summary(name: str, samples: list[float]) -> str:
    cut = statistics.quantiles(samples, n=100)
    return f"| {name} | {statistics.median(samples):.0f} | {cut[98]:.0f} |"


async def measure(url: str) -> list[str]:
    redis = Redis.from_url(url)
    storage = RedisStorage(
        f"async+{url}",
        implementation="redispy",
        # Documented by limits, but its signature types options as scalars only.
        connection_pool=redis.connection_pool,  # type: ignore[arg-type]
    )
    moving = MovingWindowRateLimiter(storage)
    rows = []
    for label, limit in (("allowed", 10 * CHECKS), ("refused", 1)):
        item = RateLimitItemPerSecond(limit, WINDOW_SECONDS)

        async def fixed(owner: str, limit: int = limit) -> bool:
            return await fixed_window(redis, owner, limit)

        async def sliding(owner: str, item: RateLimitItemPerSecond = item) -> bool:
            return await moving.hit(item, owner)

        rows.append(summary(f"fixed window, {label}", await timed(fixed, f"f-{label}")))
        rows.append(summary(f"moving window (limits), {label}", await timed(sliding, f"m-{label}")))
    await redis.aclose()
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as directory, start_redis(Path(directory)) as server:
        rows = asyncio.run(measure(server.url))
    print(f"{CHECKS} checks each, one client, Python {sys.version.split()[0]}")
    print("| strategy | median µs | p99 µs |")
    print("|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
