"""Ties the offset ledger to a topic's lifetime on the broker.

The window sink skips any record at or below the highest offset applied for its partition
(``windows.lua``). Offsets restart at 0 when a topic is deleted and created again, or when a broker
loses its data (the local broker keeps everything in memory), while Redis keeps the ledger: every
new record would then be skipped as a "redelivery". Kafka names each topic's lifetime with a topic
id (a UUID, KIP-516, in Metadata since Kafka 2.8; Tansu has them too), so ledger entries are keyed
``{topic}#{topic_id}:{partition}``: a new lifetime starts a fresh entry, whoever sees it first.

Ids are looked up when the worker starts, when partitions are assigned (a broker restart makes the
group join again) and whenever a partition's offsets go backwards in this process. A change is
logged, counted in the stats hash as ``topic_lifetime_changes``, and the old lifetime's entries
are deleted. A broker without topic ids leaves keys as ``{topic}:{partition}`` (no detection).
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable, Iterable

from contracts.keys import RedisKeys

log = logging.getLogger("babelwatch.lifetimes")

Describe = Callable[[list[str]], Awaitable[dict[str, str | None]]]  # topic -> id (None: broker has none)
NO_ID = "00000000-0000-0000-0000-000000000000"

# KEYS: ids hash, offsets hash, stats hash. ARGV: topic, id. Returns 0 same, 1 first seen, 2 changed.
_REGISTER = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local legacy, fresh = ARGV[1] .. ':', ARGV[1] .. '#' .. ARGV[2] .. ':'
local prev = old and (ARGV[1] .. '#' .. old .. ':')
for _, f in ipairs(redis.call('HKEYS', KEYS[2])) do
  if not old and f:sub(1, #legacy) == legacy then
    -- the first id ever seen: entries written before ids were known belong to this lifetime
    redis.call('HSET', KEYS[2], fresh .. f:sub(#legacy + 1), redis.call('HGET', KEYS[2], f))
    redis.call('HDEL', KEYS[2], f)
  elseif prev and f:sub(1, #prev) == prev then
    redis.call('HDEL', KEYS[2], f)
  end
end
if old then
  redis.call('HINCRBY', KEYS[3], 'topic_lifetime_changes', 1)
  return 2
end
return 1
"""


class TopicLifetimes:
    def __init__(self, redis, prefix: str, describe: Describe) -> None:
        self.redis = redis
        self.keys = RedisKeys(prefix)
        self.describe = describe
        self._ids: dict[str, str] = {}
        self._newest: dict[tuple[str, int], int] = {}  # highest offset this process applied
        self._register = redis.register_script(_REGISTER)

    def source(self, topic: str, partition: int) -> str:
        """The ledger field of a partition in the topic's current lifetime."""
        tid = self._ids.get(topic)
        return f"{topic}#{tid}:{partition}" if tid else f"{topic}:{partition}"

    def went_back(self, positions: Iterable[tuple[str, int, int]]) -> bool:
        """Did any (topic, partition, offset) go below what this process applied before?"""
        return any(off <= self._newest.get((t, p), -1) for t, p, off in positions)

    def applied(self, positions: Iterable[tuple[str, int, int]]) -> None:
        for t, p, off in positions:
            if off > self._newest.get((t, p), -1):
                self._newest[(t, p)] = off

    async def refresh(self, topics: Iterable[str]) -> list[str]:
        """Look the topics' ids up; returns the topics whose lifetime changed."""
        wanted = sorted(set(topics))
        if not wanted:
            return []
        ids = await self.describe(wanted)
        changed = []
        for topic in wanted:
            tid = ids.get(topic)
            if not tid or tid == NO_ID:
                continue
            k = self.keys
            state = int(await self._register(keys=[k.topic_ids, k.offsets, k.stats], args=[topic, tid]))
            known = self._ids.get(topic)
            self._ids[topic] = tid
            if state == 2 or (known is not None and known != tid):
                changed.append(topic)
                self._newest = {k: v for k, v in self._newest.items() if k[0] != topic}
                log.warning("topic %s has a new lifetime on the broker (id %s, was %s): it was recreated or "
                            "the broker lost its data; its offsets start again", topic, tid, known or "another")
        return changed
