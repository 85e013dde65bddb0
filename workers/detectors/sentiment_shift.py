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
from typing import Annotated

from pydantic import Field

from workers.detectors.base import ClosedWindow, OnlineDetector, Verdict, learned, sentiment_sample


class SentimentShift(OnlineDetector):
    kind = "sentiment_shift"

    alpha: Annotated[float, Field(gt=0, le=1, description="EWMA weight of the newest window")] = 0.1
    threshold: Annotated[float, Field(gt=0, description="|z| that fires")] = 4.0
    min_count: Annotated[int, Field(ge=1, description="windows with fewer events are skipped")] = 20
    min_history: Annotated[int, Field(ge=2, description="windows folded in before the first verdict")] = 8
    min_delta: Annotated[float, Field(ge=0, description="smallest |mean - EWMA| that alerts")] = 0.05
    floor: Annotated[float, Field(gt=0, description="variance floor")] = 1e-4
    clip: Annotated[float, Field(ge=0, description="residuals folded in are clipped at this many sd, 0 = off")] = 3.0
    n: int = learned(0)  # windows folded in
    mean: float = learned(0.0)
    var: float = learned(0.0)  # between-window variance beyond sampling noise

    def _guard(self, window: ClosedWindow) -> tuple[float, float] | None:
        return sentiment_sample(window) if window.count >= self.min_count else None

    def _warm(self) -> bool:
        return self.n >= self.min_history

    def _sd(self, sampling: float) -> float:
        return math.sqrt(self.var + sampling + self.floor)

    def _judge(self, window: ClosedWindow, x: tuple[float, float]) -> Verdict:
        mean, sampling = x
        resid = mean - self.mean
        z = resid / self._sd(sampling)
        return Verdict(
            detector=self.name,
            score=abs(z),
            threshold=self.threshold,
            value=mean,
            baseline=self.mean,
            anomalous=abs(z) >= self.threshold and abs(resid) >= self.min_delta,
            message=(
                f"mean sentiment {'rose' if resid > 0 else 'fell'} to {mean:+.3f} over {window.count} events"
                f" vs EWMA {self.mean:+.3f} (z {z:+.1f})"
            ),
        )

    def _learn(self, window: ClosedWindow, x: tuple[float, float], verdict: Verdict | None) -> None:
        mean, sampling = x
        resid = mean - self.mean
        if self._warm() and self.clip > 0:  # clipped once the band is known
            lim = self.clip * self._sd(sampling)
            resid = max(-lim, min(lim, resid))
        self.n += 1
        a = max(self.alpha, 1.0 / self.n)
        if self.n == 1:
            self.mean, self.var = mean, 0.0
        else:
            self.mean += a * resid
            self.var = max(0.0, (1 - a) * (self.var + a * (resid * resid - sampling)))
