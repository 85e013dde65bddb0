"""Sentiment shift: a window's mean sentiment against an EWMA of the windows before it.

The detector follows the window sentiment mean x_t with an exponentially weighted mean m and
variance v (weight ``alpha``; the first 1/alpha windows use the plain running mean and variance so
early windows are not over-weighted). A closed window is scored BEFORE it is folded in:

    z = (x - m) / sqrt(v + s2/n + floor)

``s2/n`` is the window's own sampling variance (per-event variance s2 from the stored sum of
squares, else from the label counts; 0 when neither is known) and ``v`` then estimates only the
extra, between-window variance (EWMA of (x - m)^2 - s2/n, kept >= 0). A quiet night window of 25
events is therefore judged with a wider band than a busy one of 2,000, instead of both sharing one
variance. ``floor`` keeps the band from collapsing on a perfectly steady series.

Alert: |z| >= threshold AND |x - m| >= min_delta (a statistically clear but tiny move on a huge
topic is not news). Verdict.score is |z|; the message says which way sentiment moved.

Guards and state:

* min_count: a window with fewer events (its mean is mostly noise) is neither scored nor folded
  in -- it returns None and the state keeps only its position. Folding such windows in would
  widen the band for every window after them.
* cold start: no verdict until ``min_history`` windows that passed the count guard were folded in.
* the residual folded into m and v is clipped at ``clip`` standard deviations: one wild window
  moves the baseline by a bounded step, while a lasting level shift is still absorbed over
  ~1/alpha windows (it alerts on its first windows, then becomes the new normal).
"""
from __future__ import annotations

import math

from workers.detectors.base import ClosedWindow, Verdict


class SentimentShift:
    name = "sentiment_shift"

    def __init__(
        self,
        alpha: float = 0.1,
        threshold: float = 4.0,
        min_count: int = 20,
        min_history: int = 8,
        min_delta: float = 0.05,
        floor: float = 1e-4,
        clip: float = 3.0,
        name: str | None = None,
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if min_history < 2:
            raise ValueError("min_history must be >= 2")
        self.alpha = alpha
        self.threshold = threshold
        self.min_count = min_count
        self.min_history = min_history
        self.min_delta = min_delta
        self.floor = floor
        self.clip = clip
        if name is not None:
            self.name = name
        self._n = 0  # windows folded in
        self._mean = 0.0
        self._var = 0.0  # between-window variance beyond sampling noise
        self._last: int | None = None

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def var(self) -> float:
        return self._var

    def update(self, window: ClosedWindow) -> Verdict | None:
        index = window.index
        if self._last is not None and index <= self._last:
            return None  # redelivered or out of order: ignored
        self._last = index
        if window.count < self.min_count or window.count <= 0:
            return None
        x = window.sentiment_mean
        s2 = window.sentiment_event_var
        sampling = (s2 / window.count) if s2 is not None else 0.0
        sd = math.sqrt(self._var + sampling + self.floor)
        resid = x - self._mean
        verdict = None
        if self._n >= self.min_history:
            z = resid / sd
            verdict = Verdict(
                detector=self.name,
                score=abs(z),
                threshold=self.threshold,
                value=x,
                baseline=self._mean,
                anomalous=abs(z) >= self.threshold and abs(resid) >= self.min_delta,
                message=(
                    f"mean sentiment {'rose' if resid > 0 else 'fell'} to {x:+.3f} over {window.count} events"
                    f" vs EWMA {self._mean:+.3f} (z {z:+.1f})"
                ),
            )
        # fold in (clipped once the band is known)
        if self._n >= self.min_history and self.clip > 0:
            lim = self.clip * sd
            resid = max(-lim, min(lim, resid))
        self._n += 1
        a = max(self.alpha, 1.0 / self._n)
        if self._n == 1:
            self._mean, self._var = x, 0.0
        else:
            self._mean += a * resid
            excess = resid * resid - sampling
            self._var = max(0.0, (1 - a) * (self._var + a * excess))
        return verdict

    def params(self) -> dict:
        return {
            "alpha": self.alpha, "threshold": self.threshold, "min_count": self.min_count,
            "min_history": self.min_history, "min_delta": self.min_delta, "floor": self.floor,
            "clip": self.clip, "name": self.name,
        }

    def state(self) -> dict:
        return {
            "kind": "sentiment_shift", "params": self.params(), "last": self._last,
            "n": self._n, "mean": self._mean, "var": self._var,
        }

    @classmethod
    def from_state(cls, state: dict) -> "SentimentShift":
        det = cls(**state["params"])
        det._last = state.get("last")
        det._n = int(state.get("n", 0))
        det._mean = float(state.get("mean", 0.0))
        det._var = float(state.get("var", 0.0))
        return det
