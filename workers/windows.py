"""Tumbling sentiment windows in Redis, per (topic, language) and per topic over all languages.

Each window is one hash ``{prefix}:w:{size}:{topic}:{lang}:{start}`` with fields ``count``,
``negative``, ``neutral``, ``positive`` and ``sentiment_sum``, expiring after ``retention`` windows.
A batch is applied by one Lua script (``windows.lua``): ONE round trip that skips events whose
Kafka offset was already applied (effectively-once under at-least-once delivery), folds the rest
into per-window deltas, and reads back the volume history the detectors need.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from babelwatch.schema import ALL_LANGS, LABELS, Scored


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


class WindowStore:
    def __init__(self, redis, size_s: int = 60, retention: int = 120, prefix: str = "bw", history: int = 5) -> None:
        self.redis = redis  # redis.asyncio.Redis
        self.size_s = size_s
        self.retention = retention
        self.prefix = prefix
        self.history = history
        self.applied_total = 0
        self.skipped_total = 0  # redelivered events that were already counted
        self._script = redis.register_script(_SCRIPT)

    def key(self, topic: str, lang: str, start: int) -> str:
        return f"{self.prefix}:w:{self.size_s}:{topic}:{lang}:{start}"

    def index_key(self) -> str:
        return f"{self.prefix}:topics"

    def langs_key(self, topic: str) -> str:
        return f"{self.prefix}:langs:{topic}"

    async def apply(
        self, scored: Sequence[Scored], positions: Sequence[tuple[str, int] | None] | None = None
    ) -> list[WindowState]:
        """Add a batch to its windows, each event at most once; return every touched window with
        its volume history. ``positions[i]`` is event i's (source, offset), e.g. ("events:3", 1234):
        an event at or below the last offset applied for its source is skipped (a redelivery)."""
        if not scored:
            return []
        args: list = [self.prefix, self.size_s, self.size_s * self.retention, self.history]
        for i, s in enumerate(scored):
            pos = positions[i] if positions is not None else None
            src, off = pos if pos is not None else ("", 0)
            args += [src, off, s.topic, s.lang, s.label, repr(s.sentiment), repr(s.ts)]
        reply = await self._script(args=args)
        self.applied_total += int(reply[0])
        self.skipped_total += int(reply[1])
        states, i, step = [], 2, 5 + self.history
        while i < len(reply):
            topic, lang, start, count, ssum = (_text(x) for x in reply[i : i + 5])
            hist = tuple(None if h is None else int(h) for h in reply[i + 5 : i + step])
            states.append(WindowState(topic, lang, int(start), self.size_s, int(count), float(ssum), hist))
            i += step
        return states

    async def read(self, topic: str, lang: str, start: int) -> dict[str, float]:
        raw = await self.redis.hgetall(self.key(topic, lang, start))
        return {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in raw.items()}

    async def series(self, topic: str, lang: str, end_ts: float, n: int) -> list[tuple[int, dict[str, float]]]:
        """The last ``n`` windows up to the one holding ``end_ts``, oldest first (one round trip)."""
        last = window_start(end_ts, self.size_s)
        starts = [last - k * self.size_s for k in range(n - 1, -1, -1)]
        pipe = self.redis.pipeline(transaction=False)
        for s in starts:
            pipe.hgetall(self.key(topic, lang, s))
        replies = await pipe.execute()
        return [
            (s, {(k.decode() if isinstance(k, bytes) else k): float(v) for k, v in r.items()})
            for s, r in zip(starts, replies)
        ]

    async def topics(self) -> list[str]:
        return sorted(m.decode() if isinstance(m, bytes) else m for m in await self.redis.smembers(self.index_key()))

    async def langs(self, topic: str) -> list[str]:
        return sorted(m.decode() if isinstance(m, bytes) else m for m in await self.redis.smembers(self.langs_key(topic)))
