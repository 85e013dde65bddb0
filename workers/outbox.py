"""Closed windows wait in a Redis list (written by the window script in the same atomic step that
closed them) until they are sent on to Kafka: a worker killed in between loses nothing.

Draining is at-least-once (a crash after the send but before the trim sends again); detectors
ignore a window they have already seen, so a duplicate changes nothing.
"""
from __future__ import annotations

import uuid
from typing import Awaitable, Callable

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class ClosedWindowOutbox:
    def __init__(self, redis, prefix: str = "bw", lock_ms: int = 30_000) -> None:
        self.redis = redis
        self.key = f"{prefix}:closed:outbox"
        self.lock_key = f"{prefix}:closed:outbox:lock"
        self.lock_ms = lock_ms
        self._release = redis.register_script(_RELEASE)

    async def drain(self, send: Callable[[list[bytes]], Awaitable[None]], max_items: int = 1000) -> int:
        """Send up to ``max_items`` waiting windows (JSON bytes) with ``send``, then drop them.
        One worker drains at a time; others return 0 at once."""
        token = uuid.uuid4().hex
        if not await self.redis.set(self.lock_key, token, nx=True, px=self.lock_ms):
            return 0
        try:
            items = await self.redis.lrange(self.key, 0, max_items - 1)
            if items:
                await send(list(items))
                await self.redis.ltrim(self.key, len(items), -1)
            return len(items)
        finally:
            await self._release(keys=[self.lock_key], args=[token])

    async def pending(self) -> int:
        return int(await self.redis.llen(self.key))
