"""Event-time sentiment windows in Redis, per (topic, language) and per topic over all languages.

Window shapes (``WindowSpec``): a primary tumbling size plus extra tumbling or hopping ones. Each
window is one hash (``RedisKeys.window``) with fields ``count``, ``negative``, ``neutral``,
``positive``, ``sentiment_sum``, ``sentiment_sq``, ``text`` and ``image`` (modality counts),
expiring after ``retention`` windows of its size. A per-topic watermark (newest event time minus
the allowed lateness) decides what is late and what closed.
A batch is applied by one Lua script (``windows.lua``): ONE round trip that skips events whose
Kafka offset was already applied (effectively-once under at-least-once delivery), folds the rest
into per-window deltas, and reads back the volume history the detectors need. Every window with
data that the watermark passes is reported closed, however far event time jumps (empty ones of a
long jump are counted instead of listed: ``closed_dropped``).
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import orjson

from contracts.keys import RedisKeys
from contracts.schema import ALL_LANGS, LABELS, Scored
from contracts.windows import ClosedWindow, WindowSpec  # re-exported: their home is contracts

log = logging.getLogger("babelwatch.windows")


def window_start(ts: float, size_s: int) -> int:
    """Start of the tumbling window holding ``ts`` (epoch seconds, aligned to the epoch)."""
    return int(ts // size_s) * size_s


@dataclass
class WindowDelta:
    count: int = 0
    labels: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LABELS, 0))
    sentiment_sum: float = 0.0

    def add(self, s: Scored) -> None:
        self.count += 1
        self.labels[s.label] += 1
        self.sentiment_sum += s.sentiment


@dataclass(frozen=True)
class WindowState:
    """A window after a batch was applied, plus the counts of the windows before it."""

    topic: str
    lang: str
    start: int
    size_s: int
    count: int
    sentiment_sum: float
    history: tuple[int | None, ...]  # counts of the previous windows, oldest first; None = no key

    @property
    def sentiment_mean(self) -> float:
        return self.sentiment_sum / self.count if self.count else 0.0


def fold(scored: Iterable[Scored], size_s: int) -> dict[tuple[str, str, int], WindowDelta]:
    deltas: dict[tuple[str, str, int], WindowDelta] = defaultdict(WindowDelta)
    for s in scored:
        start = window_start(s.ts, size_s)
        deltas[(s.topic, s.lang, start)].add(s)
        deltas[(s.topic, ALL_LANGS, start)].add(s)
    return deltas


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


_SCRIPT = (Path(__file__).with_name("windows.lua")).read_text()


@dataclass
class ApplyResult:
    open: list[WindowState] = field(default_factory=list)  # touched windows of the primary spec
    closed: list[ClosedWindow] = field(default_factory=list)
    late: list[int] = field(default_factory=list)  # indexes into the batch
    applied: int = 0
    skipped: int = 0
    outbox: int = 0  # closed windows waiting in the outbox to be sent on (workers.outbox)
    # closed '*' windows not listed: empty (no key: nothing was ever applied there) and older than
    # the newest `retention` windows of a long jump in event time (windows.lua)
    closed_dropped: int = 0


class WindowStore:
    def __init__(
        self,
        redis,
        size_s: int = 60,
        retention: int = 120,
        prefix: str = "bw",
        history: int = 5,
        extra: Sequence[WindowSpec] = (),
        allowed_lateness_s: float = 300.0,
    ) -> None:
        self.redis = redis  # redis.asyncio.Redis
        self.size_s = size_s
        self.specs = [WindowSpec(size_s, size_s), *[e for e in extra if e != WindowSpec(size_s, size_s)]]
        self.retention = retention
        self.keys = RedisKeys(prefix)
        self.history = history
        self.allowed_lateness_s = allowed_lateness_s
        self.applied_total = 0
        self.skipped_total = 0  # redelivered events that were already counted
        self._script = redis.register_script(_SCRIPT)
        k = self.keys
        self._script_keys = [k.offsets, k.watermarks, k.stats, k.closed_outbox, k.topics]
        # The per-event window keys are built in the script from these pieces rather than passed as
        # KEYS: measured on 256-event batches (6 topics, 4 languages, ~76 windows closing per
        # batch), building and sending the ~300 keys the events and histories touch (~500 with a
        # second, hopping shape) made a call 6 -> 8 ms (11 -> 16 ms), and the keys of the windows
        # that close cannot be known before the script has read the watermarks anyway.
        self._pieces = [*k.pieces(k.window), *k.pieces(k.langs)]

    def key(self, topic: str, lang: str, start: int, spec: WindowSpec | None = None) -> str:
        return self.keys.window((spec or self.specs[0]).name, topic, lang, start)

    async def apply(
        self, scored: Sequence[Scored], positions: Sequence[tuple[str, int] | None] | None = None
    ) -> list[WindowState]:
        """Like :meth:`apply_batch`, returning only the touched primary windows."""
        return (await self.apply_batch(scored, positions)).open

    async def apply_batch(
        self, scored: Sequence[Scored], positions: Sequence[tuple[str, int] | None] | None = None,
        now: float | None = None,
    ) -> ApplyResult:
        """Add a batch to its windows (every spec, per language and for all), each event at most
        once, in one script call. ``positions[i]`` is event i's (source, offset), e.g.
        ("events:3", 1234): an event at or below the last offset applied for its source is
        skipped (a redelivery). Events older than their topic's watermark are late: not applied,
        their indexes returned. Windows the watermark passed are returned as closed. The watermark
        never moves past ``now`` (default: this clock), whatever an event claims."""
        if not scored:
            return ApplyResult()
        now = time.time() if now is None else now
        args: list = [*self._pieces, self.retention, self.history, self.allowed_lateness_s, repr(float(now)),
                      len(self.specs)]
        for spec in self.specs:
            args += [spec.size_s, spec.hop_s, spec.name]
        for i, s in enumerate(scored):
            pos = positions[i] if positions is not None else None
            src, off = pos if pos is not None else ("", 0)
            mods = (1 if "text" in s.modalities else 0) + (2 if "image" in s.modalities else 0)
            args += [src, off, s.topic, s.lang, s.label, repr(s.sentiment), repr(s.ts), mods]
        reply = orjson.loads(await self._script(keys=self._script_keys, args=args))
        # `or ()`: cjson writes an empty list as {}
        result = ApplyResult(
            open=[WindowState(w["topic"], w["lang"], w["start"], self.size_s, w["count"], float(w["sentiment_sum"]),
                              tuple(w["history"] or ())) for w in reply["open"] or ()],
            closed=[ClosedWindow.from_dict(c) for c in reply["closed"] or ()],
            late=list(reply["late"] or ()), applied=reply["applied"], skipped=reply["skipped"],
            outbox=reply["outbox"], closed_dropped=reply["closed_dropped"],
        )
        self.applied_total += result.applied
        self.skipped_total += result.skipped
        if result.closed_dropped:
            log.warning("a jump in event time closed %d empty windows beyond the retention horizon without "
                        "listing them (counted in %s closed_dropped)", result.closed_dropped, self.keys.stats)
        return result

    async def read(self, topic: str, lang: str, start: int, spec: WindowSpec | None = None) -> dict[str, float]:
        raw = await self.redis.hgetall(self.key(topic, lang, start, spec))
        return {_text(k): float(v) for k, v in raw.items()}

    async def series(
        self, topic: str, lang: str, end_ts: float, n: int, spec: WindowSpec | None = None
    ) -> list[tuple[int, dict[str, float]]]:
        """The last ``n`` windows of a shape up to the newest one holding ``end_ts``, oldest
        first, in one round trip. Missing windows come back empty (zero volume)."""
        spec = spec or self.specs[0]
        last = window_start(end_ts, spec.hop_s)
        starts = [last - k * spec.hop_s for k in range(n - 1, -1, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for s in starts:
            pipe.hgetall(self.key(topic, lang, s, spec))
        replies = await pipe.execute()
        return [(s, {_text(k): float(v) for k, v in r.items()}) for s, r in zip(starts, replies)]

    async def topics(self) -> list[str]:
        return sorted(_text(m) for m in await self.redis.smembers(self.keys.topics))

    async def langs(self, topic: str) -> list[str]:
        return sorted(_text(m) for m in await self.redis.smembers(self.keys.langs(topic)))
