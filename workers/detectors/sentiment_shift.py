"""Sentiment shift: a window's mean sentiment against an EWMA of the windows before it.

z = (x - m) / sqrt(v + s2/n + floor): each window's own sampling noise widens its band, so quiet
windows need a larger move. Alert when |z| >= threshold and |x - m| >= min_delta.
Algorithm, guards, parameters and defaults: docs/detectors.md#sentiment_shift
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
