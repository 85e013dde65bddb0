"""Event-time sentiment windows in Redis, per (topic, language) and per topic over all languages.

Window shapes (``WindowSpec``): a primary tumbling size plus extra tumbling or hopping ones. Each
window is one hash ``{prefix}:w:{size[/hop]}:{topic}:{lang}:{start}`` with fields ``count``,
``negative``, ``neutral``, ``positive``, ``sentiment_sum``, ``sentiment_sq``, ``text`` and
``image`` (modality counts), expiring after ``retention`` windows of its size. A per-topic
watermark (newest event time minus the allowed lateness) decides what is late and what closed.
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

from contracts.schema import ALL_LANGS, LABELS, Scored

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


@dataclass(frozen=True)
class WindowSpec:
    """A window shape: tumbling when hop == size, hopping (overlapping) when hop < size."""

    size_s: int
    hop_s: int

    @classmethod
    def parse(cls, text: str) -> "WindowSpec":
        """``"300"`` is a 5-min tumbling window, ``"300/60"`` a 5-min window every minute."""
        size, _, hop = text.strip().partition("/")
        spec = cls(int(size), int(hop or size))
        if spec.size_s <= 0 or spec.hop_s <= 0 or spec.size_s % spec.hop_s:
            raise ValueError(f"window {text!r}: size and hop must be positive and size a multiple of hop")
        return spec

    @property
    def name(self) -> str:
        return str(self.size_s) if self.size_s == self.hop_s else f"{self.size_s}/{self.hop_s}"


@dataclass(frozen=True)
class ClosedWindowStats:
    """A window the watermark has passed. Final: later events for it are late and diverted."""

    topic: str
    lang: str
    spec: WindowSpec
    start: int
    count: int
    labels: dict[str, int]
    sentiment_sum: float
    sentiment_sq: float
    modalities: dict[str, int]

    @property
    def sentiment_mean(self) -> float:
        return self.sentiment_sum / self.count if self.count else 0.0


@dataclass
class ApplyResult:
    open: list[WindowState] = field(default_factory=list)  # touched windows of the primary spec
    closed: list[ClosedWindowStats] = field(default_factory=list)
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
        self.prefix = prefix
        self.history = history
        self.allowed_lateness_s = allowed_lateness_s
        self.applied_total = 0
        self.skipped_total = 0  # redelivered events that were already counted
        self._script = redis.register_script(_SCRIPT)

    def key(self, topic: str, lang: str, start: int, spec: WindowSpec | None = None) -> str:
        return f"{self.prefix}:w:{(spec or self.specs[0]).name}:{topic}:{lang}:{start}"

    def index_key(self) -> str:
        return f"{self.prefix}:topics"

    def langs_key(self, topic: str) -> str:
        return f"{self.prefix}:langs:{topic}"

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
        args: list = [self.prefix, self.retention, self.history, self.allowed_lateness_s, repr(float(now)),
                      len(self.specs)]
        for spec in self.specs:
            args += [spec.size_s, spec.hop_s]
        for i, s in enumerate(scored):
            pos = positions[i] if positions is not None else None
            src, off = pos if pos is not None else ("", 0)
            mods = (1 if "text" in s.modalities else 0) + (2 if "image" in s.modalities else 0)
            args += [src, off, s.topic, s.lang, s.label, repr(s.sentiment), repr(s.ts), mods]
        reply = await self._script(args=args)
        result = ApplyResult(applied=int(reply[0]), skipped=int(reply[1]))
        self.applied_total += result.applied
        self.skipped_total += result.skipped
        n_late = int(reply[2])
        result.late = [int(x) - 1 for x in reply[3 : 3 + n_late]]
        i = 3 + n_late
        n_open, i = int(reply[i]), i + 1
        step = 5 + self.history
        for _ in range(n_open):
            topic, lang, start, count, ssum = (_text(x) for x in reply[i : i + 5])
            hist = tuple(None if h is None else int(h) for h in reply[i + 5 : i + step])
            result.open.append(WindowState(topic, lang, int(start), self.size_s, int(count), float(ssum), hist))
            i += step
        n_closed, i = int(reply[i]), i + 1
        for _ in range(n_closed):
            f = [_text(x) for x in reply[i : i + 13]]
            result.closed.append(
                ClosedWindowStats(
                    topic=f[0], lang=f[1], spec=WindowSpec(int(f[2]), int(f[3])), start=int(f[4]),
                    count=int(f[5]), labels={"negative": int(f[6]), "neutral": int(f[7]), "positive": int(f[8])},
                    sentiment_sum=float(f[9]), sentiment_sq=float(f[10]),
                    modalities={"text": int(f[11]), "image": int(f[12])},
                )
            )
            i += 13
        result.outbox = int(reply[i])
        result.closed_dropped = int(reply[i + 1])
        if result.closed_dropped:
            log.warning("a jump in event time closed %d empty windows beyond the retention horizon without "
                        "listing them (counted in %s:stats closed_dropped)", result.closed_dropped, self.prefix)
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
        return sorted(m.decode() if isinstance(m, bytes) else m for m in await self.redis.smembers(self.index_key()))

    async def langs(self, topic: str) -> list[str]:
        return sorted(m.decode() if isinstance(m, bytes) else m for m in await self.redis.smembers(self.langs_key(topic)))
