"""Where lifecycle state lives: a versioned record per alert fingerprint, written compare-and-set.

One ``EVALSHA`` commits a whole batch (a stale version returns the current record to recompute);
a write that notifies appends to the outbox and the history in the same script.
Redis layout and the commit: docs/design.md#alert-state-in-redis
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

from contracts.keys import RedisKeys

from workers.alerting import cloudevents
from workers.alerting.model import ACTIVE_STATES, AlertInstance

_TIME_FIELDS = ("active_since", "last_active_at", "fired_at", "resolved_at", "last_notified_at")


@dataclass(frozen=True)
class Versioned:
    version: int  # 0 = no record
    alert: AlertInstance | None


ABSENT = Versioned(0, None)


@dataclass(frozen=True)
class Commit:
    fingerprint: str
    expected_version: int
    alert: AlertInstance | None  # None: verify the version only, write nothing
    note: AlertInstance | None = None  # the notification this write causes (outbox and history)


class AlertStateStore(ABC):
    @abstractmethod
    async def read(self, fingerprints: Sequence[str]) -> dict[str, Versioned]:
        """Current records (ABSENT for unknown fingerprints)."""

    @abstractmethod
    async def commit(self, items: Sequence[Commit]) -> dict[str, Versioned]:
        """Apply the items whose expected version holds; return the CURRENT record of each that
        did not (the conflicts). Applied writes get version ``expected + 1``; the Redis store
        also queues an applied item's ``note`` in its outbox and history, atomically with the write."""

    @abstractmethod
    async def stale(self, before: float, limit: int = 1000) -> dict[str, Versioned]:
        """Pending/firing alerts last observed active before ``before``."""

    @abstractmethod
    async def active(self) -> list[AlertInstance]:
        """All pending/firing alerts (for the API)."""


# --------------------------------------------------------------------------------------------- memory


class MemoryAlertStateStore(AlertStateStore):
    """Same semantics in process memory: unit tests, and single-process deployments."""

    def __init__(self) -> None:
        self.records: dict[str, Versioned] = {}

    async def read(self, fingerprints: Sequence[str]) -> dict[str, Versioned]:
        return {fp: self.records.get(fp, ABSENT) for fp in fingerprints}

    async def commit(self, items: Sequence[Commit]) -> dict[str, Versioned]:
        conflicts: dict[str, Versioned] = {}
        for c in items:
            cur = self.records.get(c.fingerprint, ABSENT)
            if cur.version != c.expected_version:
                conflicts[c.fingerprint] = cur
            elif c.alert is not None:
                self.records[c.fingerprint] = Versioned(cur.version + 1, c.alert.model_copy(deep=True))
        return conflicts

    async def stale(self, before: float, limit: int = 1000) -> dict[str, Versioned]:
        out = {
            fp: v for fp, v in self.records.items()
            if v.alert is not None and v.alert.state in ACTIVE_STATES and (v.alert.last_active_at or 0) < before
        }
        return dict(list(out.items())[:limit])

    async def active(self) -> list[AlertInstance]:
        return [v.alert for v in self.records.values() if v.alert is not None and v.alert.state in ACTIVE_STATES]


# ---------------------------------------------------------------------------------------------- redis

# KEYS: live set, outbox, history, then the record of each item. ARGV: history_len, then 7 per item
# (fingerprint, expected version, fields, ttl, live score, CloudEvent, history entry; "" = none).
# Returns per item its new version, or its current record (HGETALL) when the version did not hold.
_COMMIT_LUA = """
local live, outbox, history = KEYS[1], KEYS[2], KEYS[3]
local history_len = tonumber(ARGV[1])
local pushed, n = false, 0
local out = {}
for i = 2, #ARGV, 7 do
  n = n + 1
  local fp, key = ARGV[i], KEYS[3 + n]
  local cur = tonumber(redis.call('HGET', key, 'version') or '0')
  if cur ~= tonumber(ARGV[i + 1]) then
    out[#out + 1] = redis.call('HGETALL', key)
  else
    if ARGV[i + 2] ~= '' then
      cur = cur + 1
      redis.call('HSET', key, 'version', cur, unpack(cjson.decode(ARGV[i + 2])))
      redis.call('EXPIRE', key, tonumber(ARGV[i + 3]))
      if ARGV[i + 4] == '' then
        redis.call('ZREM', live, fp)
      else
        redis.call('ZADD', live, ARGV[i + 4], fp)
      end
      if ARGV[i + 5] ~= '' then redis.call('RPUSH', outbox, ARGV[i + 5]) end
      if ARGV[i + 6] ~= '' then
        redis.call('LPUSH', history, ARGV[i + 6])
        pushed = true
      end
    end
    out[#out + 1] = cur
  end
end
if pushed then redis.call('LTRIM', history, 0, history_len - 1) end
return out
"""

# KEYS: live set. ARGV: the record key's pieces (RedisKeys.pieces: the fingerprints are read here),
# before, limit. Returns {fingerprint, record (HGETALL)} pairs.
_STALE_LUA = """
local live = KEYS[1]
local fps = redis.call('ZRANGEBYSCORE', live, '-inf', '(' .. ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for _, fp in ipairs(fps) do
  local h = redis.call('HGETALL', ARGV[1] .. fp .. ARGV[2])
  if #h == 0 then
    redis.call('ZREM', live, fp)
  else
    out[#out + 1] = {fp, h}
  end
end
return out
"""


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def encode_fields(a: AlertInstance) -> list[str]:
    flat = ["state", a.state, "labels", json.dumps(a.labels, sort_keys=True),
            "annotations", json.dumps(a.annotations, sort_keys=True, default=str)]
    for f in _TIME_FIELDS:
        v = getattr(a, f)
        flat += [f, "" if v is None else repr(float(v))]
    return flat


def decode_hash(raw: Any) -> Versioned:
    """HGETALL reply (dict, or the flat list a script returns) -> Versioned."""
    if isinstance(raw, dict):
        h = {_s(k): _s(v) for k, v in raw.items()}
    else:
        items = [_s(x) for x in raw or []]
        h = dict(zip(items[0::2], items[1::2]))
    if not h:
        return ABSENT
    alert = AlertInstance.model_construct(
        labels=json.loads(h.get("labels", "{}")),
        annotations=json.loads(h.get("annotations", "{}")),
        state=h.get("state", "inactive"),
        **{f: (float(h[f]) if h.get(f) else None) for f in _TIME_FIELDS},
    )
    return Versioned(int(h.get("version", "0") or 0), alert)


class RedisAlertStateStore(AlertStateStore):
    """Lifecycle state in Redis; ``redis`` is an async client (``redis.asyncio.Redis``).
    ``history_len``: notifications kept in the alert history (0: none written)."""

    def __init__(self, redis, prefix: str = "bw", active_ttl_s: int = 7 * 86_400, retention_s: int = 86_400,
                 history_len: int = 1000) -> None:
        self.redis = redis
        self.keys = RedisKeys(prefix)
        self.active_ttl_s = int(active_ttl_s)
        self.retention_s = int(retention_s)
        self.history_len = max(0, int(history_len))
        self._commit = redis.register_script(_COMMIT_LUA)
        self._stale = redis.register_script(_STALE_LUA)

    def key(self, fp: str) -> str:
        return self.keys.alert(fp)

    async def read(self, fingerprints: Sequence[str]) -> dict[str, Versioned]:
        if not fingerprints:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for fp in fingerprints:
            pipe.hgetall(self.key(fp))
        return {fp: decode_hash(raw) for fp, raw in zip(fingerprints, await pipe.execute())}

    async def commit(self, items: Sequence[Commit]) -> dict[str, Versioned]:
        if not items:
            return {}
        k = self.keys
        keys = [k.alerts_live, k.alerts_outbox, k.alerts_history, *(k.alert(c.fingerprint) for c in items)]
        argv: list[str] = [str(self.history_len)]
        for c in items:
            if c.alert is None:
                argv += [c.fingerprint, str(c.expected_version), "", "0", "", "", ""]
                continue
            live = c.alert.state in ACTIVE_STATES
            argv += [
                c.fingerprint,
                str(c.expected_version),
                json.dumps(encode_fields(c.alert)),
                str(self.active_ttl_s if live else self.retention_s),
                repr(float(c.alert.last_active_at or 0.0)) if live else "",
                "" if c.note is None else cloudevents.dumps(
                    cloudevents.alert_event(c.note, version=c.expected_version + 1)).decode(),
                "" if c.note is None or not self.history_len else c.note.model_dump_json(),
            ]
        replies = await self._commit(keys=keys, args=argv)
        return {c.fingerprint: decode_hash(r) for c, r in zip(items, replies) if isinstance(r, list)}

    async def stale(self, before: float, limit: int = 1000) -> dict[str, Versioned]:
        k = self.keys
        reply = await self._stale(keys=[k.alerts_live], args=[*k.pieces(k.alert), repr(float(before)), str(int(limit))])
        return {_s(fp): decode_hash(h) for fp, h in reply}

    async def active(self) -> list[AlertInstance]:
        fps = [_s(fp) for fp in await self.redis.zrange(self.keys.alerts_live, 0, -1)]
        return [v.alert for v in (await self.read(fps)).values() if v.alert is not None]
