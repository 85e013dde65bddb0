"""Tumbling sentiment windows in Redis, per (topic, language) and per topic over all languages.

Each window is one hash ``{prefix}:w:{size}:{topic}:{lang}:{start}`` with fields ``count``,
``negative``, ``neutral``, ``positive`` and ``sentiment_sum``, expiring after ``retention`` windows.
A batch is folded into per-window deltas in Python first, then applied in ONE pipelined
MULTI/EXEC round trip that also reads the volume history the detectors need.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
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


class WindowStore:
    def __init__(self, redis, size_s: int = 60, retention: int = 120, prefix: str = "bw", history: int = 5) -> None:
        self.redis = redis  # redis.asyncio.Redis
        self.size_s = size_s
        self.retention = retention
        self.prefix = prefix
        self.history = history

    def key(self, topic: str, lang: str, start: int) -> str:
        return f"{self.prefix}:w:{self.size_s}:{topic}:{lang}:{start}"

    def index_key(self) -> str:
        return f"{self.prefix}:topics"

    def langs_key(self, topic: str) -> str:
        return f"{self.prefix}:langs:{topic}"

    async def apply(self, scored: Sequence[Scored]) -> list[WindowState]:
        """Add a batch to its windows; return every touched window with its volume history."""
        deltas = fold(scored, self.size_s)
        if not deltas:
            return []
        ttl = self.size_s * self.retention
        pipe = self.redis.pipeline(transaction=True)
        order = list(deltas.items())
        for (topic, lang, start), d in order:
            key = self.key(topic, lang, start)
            pipe.hincrby(key, "count", d.count)
            for label, n in d.labels.items():
                if n:
                    pipe.hincrby(key, label, n)
            pipe.hincrbyfloat(key, "sentiment_sum", d.sentiment_sum)
            pipe.expire(key, ttl)
            pipe.sadd(self.index_key(), topic)
            pipe.sadd(self.langs_key(topic), lang)
        marks = []
        for (topic, lang, start), _ in order:
            marks.append(len(pipe))
            pipe.hmget(self.key(topic, lang, start), "count", "sentiment_sum")
            for k in range(self.history, 0, -1):
                pipe.hget(self.key(topic, lang, start - k * self.size_s), "count")
        replies = await pipe.execute()
        states = []
        for ((topic, lang, start), _), mark in zip(order, marks):
            count, ssum = replies[mark]
            hist = tuple(None if r is None else int(r) for r in replies[mark + 1 : mark + 1 + self.history])
            states.append(WindowState(topic, lang, start, self.size_s, int(count), float(ssum), hist))
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
