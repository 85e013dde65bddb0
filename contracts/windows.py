"""Window shapes and the closed window: what the window store reports, the closed-window outbox and
topic carry (JSON) and the detectors read -- one type, one JSON form."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import orjson

from contracts.schema import LABELS

MODALITIES = ("text", "image")


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
        """The shape as keys, the API and settings spell it."""
        return str(self.size_s) if self.size_s == self.hop_s else f"{self.size_s}/{self.hop_s}"


@dataclass(frozen=True)
class ClosedWindow:
    """A window the watermark has passed: its statistics are final (later events are late).

    ``sentiment_sq`` is the sum of squared per-event sentiments (None when the producer did not
    keep it); ``labels`` and ``modalities`` the per-label and per-modality counts. ``hop_s`` is the
    distance between consecutive windows of the series (== ``size_s`` for tumbling windows, the
    default when 0).
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
    modalities: Mapping[str, int] = field(default_factory=dict)

    @property
    def step_s(self) -> int:
        return self.hop_s or self.size_s

    @property
    def spec(self) -> WindowSpec:
        return WindowSpec(self.size_s, self.step_s)

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

    # --- the JSON form: flat, as windows.lua writes it to the outbox --------------------------

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"topic": self.topic, "lang": self.lang, "size_s": self.size_s, "hop_s": self.step_s,
                             "start": self.start, "count": self.count, "sentiment_sum": self.sentiment_sum}
        if self.sentiment_sq is not None:
            d["sentiment_sq"] = self.sentiment_sq
        d.update({k: int(self.labels.get(k, 0)) for k in LABELS})
        d.update({k: int(self.modalities.get(k, 0)) for k in MODALITIES})
        return d

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ClosedWindow":
        """Raises ValueError (or KeyError, TypeError) for anything that is not a sound closed window:
        records come from a Kafka topic anyone allowed to produce to it can write."""
        if not isinstance(d, Mapping):
            raise TypeError(f"a closed window is a JSON object, not {type(d).__name__}")
        sq = d.get("sentiment_sq")
        w = cls(
            topic=str(d["topic"]), lang=str(d["lang"]), start=int(d["start"]), size_s=int(d["size_s"]),
            count=int(d["count"]), sentiment_sum=float(d.get("sentiment_sum", 0.0)),
            sentiment_sq=None if sq is None else float(sq),
            labels={k: int(d.get(k, 0)) for k in LABELS}, hop_s=int(d.get("hop_s", 0)),
            modalities={k: int(d.get(k, 0)) for k in MODALITIES},
        )
        if w.size_s <= 0 or w.count < 0 or w.hop_s < 0 or not (
                math.isfinite(w.sentiment_sum) and (w.sentiment_sq is None or math.isfinite(w.sentiment_sq))):
            raise ValueError("closed window out of range (size, count, hop or sums)")
        return w

    @classmethod
    def from_json(cls, raw: bytes | str) -> "ClosedWindow":
        return cls.from_dict(orjson.loads(raw))

    # --- other sources ------------------------------------------------------------------------

    @classmethod
    def from_stats(cls, stats: Any) -> "ClosedWindow":
        """From any record with topic, lang, start, count, sentiment_sum and either ``spec``
        (size_s, hop_s) or ``size_s``; ``sentiment_sq``, ``labels`` and ``modalities`` are optional."""
        spec = getattr(stats, "spec", None)
        size = spec.size_s if spec is not None else stats.size_s
        hop = spec.hop_s if spec is not None else getattr(stats, "hop_s", 0)
        sq = getattr(stats, "sentiment_sq", None)
        return cls(
            topic=stats.topic, lang=stats.lang, start=int(stats.start), size_s=int(size), count=int(stats.count),
            sentiment_sum=float(stats.sentiment_sum), sentiment_sq=None if sq is None else float(sq),
            labels=dict(getattr(stats, "labels", None) or {}), hop_s=int(hop or 0),
            modalities=dict(getattr(stats, "modalities", None) or {}),
        )

    @classmethod
    def from_hash(cls, topic: str, lang: str, start: int, size_s: int, fields: Mapping[str, float],
                  hop_s: int = 0) -> "ClosedWindow":
        """From a window hash as ``WindowStore.read`` returns it ({} for a window never written)."""
        sq = fields.get("sentiment_sq")
        return cls(
            topic=topic, lang=lang, start=int(start), size_s=int(size_s), count=int(fields.get("count", 0)),
            sentiment_sum=float(fields.get("sentiment_sum", 0.0)), sentiment_sq=None if sq is None else float(sq),
            labels={k: int(fields.get(k, 0)) for k in LABELS}, hop_s=hop_s,
            modalities={k: int(fields.get(k, 0)) for k in MODALITIES},
        )
