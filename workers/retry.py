"""Wait out an unavailable Redis instead of dropping or crashing: the stream pauses and resumes.

Safe because every Redis effect of a batch is idempotent: window updates skip offsets already
applied, closed windows wait in the outbox, alert state is compare-and-set. Re-running the whole
batch after a connection error therefore counts nothing twice.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, TypeVar

import redis.exceptions

log = logging.getLogger("babelwatch.retry")
T = TypeVar("T")

TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError)


async def until_available(call: Callable[[], Awaitable[T]], what: str, first_delay: float = 0.2,
                          max_delay: float = 5.0) -> T:
    delay, attempt = first_delay, 0
    while True:
        try:
            return await call()
        except TRANSIENT as exc:
            attempt += 1
            log.warning("%s: redis unavailable (attempt %d), retrying in %.1fs: %s", what, attempt, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
