"""Transactional outboxes: Redis lists that a Lua script appends to in the same atomic step as the
state change they announce, drained to Kafka afterwards. A worker killed between the Redis commit
and the Kafka send loses nothing: the next drain (any worker's) sends it.

* closed windows -- ``RedisKeys.closed_outbox``, appended by ``windows.lua``; detectors ignore a
  window they have already seen, so a re-sent one changes nothing;
* alert notifications -- ``RedisKeys.alerts_outbox`` (CloudEvent JSON), appended by the lifecycle's
  compare-and-set script (``workers/alerting/state_store.py``); a re-sent one carries the same
  CloudEvent id and the notifier drops it.

Draining is at-least-once: a crash after the send but before the trim sends the items again.
"""
from __future__ import annotations

import uuid
from typing import Awaitable, Callable

from contracts.keys import RedisKeys

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Outbox:
    def __init__(self, redis, key: str, lock_ms: int = 30_000) -> None:
        self.redis = redis
        self.key = key
        self.lock_key = RedisKeys.lock(key)
        self.lock_ms = lock_ms
        self._release = redis.register_script(_RELEASE)

    async def drain(self, send: Callable[[list[bytes]], Awaitable[None]], max_items: int = 1000) -> int:
        """Send up to ``max_items`` waiting items (oldest first) with ``send``, then drop them.
        One worker drains at a time (the order of the list is kept); others return 0 at once and
        leave the items to the lock holder or the next drain."""
        token = uuid.uuid4().hex
        if not await self.redis.set(self.lock_key, token, nx=True, px=self.lock_ms):
            return 0
        try:
            items = await self.redis.lrange(self.key, 0, max_items - 1)
            if items:
                await send(list(items))  # raises -> nothing trimmed, sent again next time
                await self.redis.ltrim(self.key, len(items), -1)
            return len(items)
        finally:
            await self._release(keys=[self.lock_key], args=[token])

    async def pending(self) -> int:
        return int(await self.redis.llen(self.key))
