"""The detector protocols: look at a window, return a verdict.

Two kinds of detector share :class:`Verdict`:

* :class:`Detector` -- ``check(WindowState)``: a stateless look at an OPEN window that is still
  filling, with the volume history Redis hands back (the pipeline's early volume-spike alarm).
* :class:`WindowDetector` -- ``update(ClosedWindow)``: an online estimator (river-style) fed each
  CLOSED window of one (topic, language, window shape) series exactly once, oldest first. It keeps
  its own state, which ``state()`` exports as plain JSON-able data and ``from_state`` restores, so
  the state can live in Redis between batches and move between workers.

Contract of ``update`` for every WindowDetector:

* returns ``None`` while cold (not enough history yet) or when the window is skipped by a
  minimum-count guard; otherwise a Verdict (``anomalous`` says whether to alert);
* a window whose start is not after the last one seen is ignored (returns ``None``, state
  unchanged): a redelivered or out-of-order closed window cannot corrupt the state;
* ``from_state(d.state())`` is a detector that behaves exactly like ``d`` from then on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

from workers.windows import WindowState


@dataclass(frozen=True)
class Verdict:
    detector: str
    score: float
    threshold: float
    value: float
    baseline: float
    anomalous: bool
    message: str = ""


@dataclass(frozen=True)
class ClosedWindow:
    """A window the watermark has passed: its statistics are final.

    ``sentiment_sq`` is the sum of squared per-event sentiments (None when the store did not keep
    it); ``labels`` the per-label counts. ``hop_s`` is the distance between consecutive windows of
    the series (== ``size_s`` for tumbling windows, the default when 0).
    """

    topic: str
    lang: str
    start: int
    size_s: int
    count: int
    sentiment_sum: float = 0.0
    sentiment_sq: float | None = None
    labels: Mapping[str, int] = field(default_factory=dict)
    hop_s: int = 0

    @property
    def step_s(self) -> int:
        return self.hop_s or self.size_s

    @property
    def index(self) -> int:
        """The window's position on its series' grid (start / step)."""
        return self.start // self.step_s

    @property
    def sentiment_mean(self) -> float:
        return self.sentiment_sum / self.count if self.count else 0.0

    @property
    def sentiment_event_var(self) -> float | None:
        """Per-event sentiment variance inside the window: from the sum of squares when kept, else
        approximated from the label counts (sentiment ~ +1 / 0 / -1), else None."""
        n = self.count
        if n <= 1:
            return None
        mean = self.sentiment_sum / n
        if self.sentiment_sq is not None:
            return max(0.0, (self.sentiment_sq - n * mean * mean) / (n - 1))
        pos, neg = self.labels.get("positive", 0), self.labels.get("negative", 0)
        if pos + neg + self.labels.get("neutral", 0) <= 0:
            return None
        p, q = pos / n, neg / n
        return max(0.0, (p + q - (p - q) ** 2) * n / (n - 1))

    @classmethod
    def from_stats(cls, stats: Any) -> "ClosedWindow":
        """From the window store's closed-window record (``workers.windows.ClosedWindowStats``):
        anything with topic, lang, start, count, sentiment_sum and either ``spec`` (size_s, hop_s)
        or ``size_s``; ``sentiment_sq`` and ``labels`` are optional."""
        spec = getattr(stats, "spec", None)
        size = spec.size_s if spec is not None else stats.size_s
        hop = spec.hop_s if spec is not None else getattr(stats, "hop_s", 0)
        sq = getattr(stats, "sentiment_sq", None)
        return cls(
            topic=stats.topic, lang=stats.lang, start=int(stats.start), size_s=int(size), count=int(stats.count),
            sentiment_sum=float(stats.sentiment_sum), sentiment_sq=None if sq is None else float(sq),
            labels=dict(getattr(stats, "labels", None) or {}), hop_s=int(hop or 0),
        )

    @classmethod
    def from_hash(cls, topic: str, lang: str, start: int, size_s: int, fields: Mapping[str, float],
                  hop_s: int = 0) -> "ClosedWindow":
        """From a window hash as ``WindowStore.read`` returns it ({} for a window never written)."""
        sq = fields.get("sentiment_sq")
        return cls(
            topic=topic, lang=lang, start=int(start), size_s=int(size_s), count=int(fields.get("count", 0)),
            sentiment_sum=float(fields.get("sentiment_sum", 0.0)), sentiment_sq=None if sq is None else float(sq),
            labels={k: int(fields.get(k, 0)) for k in ("negative", "neutral", "positive")}, hop_s=hop_s,
        )


class Detector(Protocol):
    name: str

    def check(self, window: WindowState) -> Verdict | None:
        """A verdict for this window, or None when there is not enough data to judge."""


@runtime_checkable
class WindowDetector(Protocol):
    """An online detector over one series of closed windows (see the module docstring)."""

    name: str

    def update(self, window: ClosedWindow) -> Verdict | None:
        """Judge this closed window against the state, then fold it into the state."""

    def state(self) -> dict:
        """Parameters and learned state as JSON-serialisable data."""

    @classmethod
    def from_state(cls, state: dict) -> "WindowDetector":
        """A detector equivalent to the one ``state`` was taken from."""
