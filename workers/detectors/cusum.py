"""Change point: a two-sided CUSUM (Page, 1954) on standardised window values.

Catches lasting level shifts and gradual drifts of mean sentiment (or of volume) that no single
window shows; after an alarm the sums reset and the reference is learned again.
Algorithm, parameters and defaults: docs/detectors.md#cusum
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Mapping

from pydantic import Field

from workers.detectors.base import ClosedWindow, OnlineDetector, Verdict, learned, sentiment_sample


class Cusum(OnlineDetector):
    kind = "cusum"

    metric: Annotated[Literal["sentiment", "volume"], Field(description="mean sentiment or event count")] = "sentiment"
    k: Annotated[float, Field(ge=0, description="allowance, in reference sigmas")] = 0.75
    h: Annotated[float, Field(gt=0, description="decision threshold")] = 8.0
    warmup: Annotated[int, Field(ge=2, description="windows that (re)learn the reference")] = 24
    min_count: Annotated[int, Field(ge=0)] = 20
    sd_floor: Annotated[float, Field(gt=0)] = 0.01
    alpha: Annotated[float, Field(ge=0, lt=1, description="EWMA tracking of the reference, 0 = frozen")] = 0.01
    relearn: Annotated[bool, Field(description="learn the reference again after an alarm")] = True
    learn: list[list[float]] = learned(default_factory=list)  # [x, sampling var] while (re)learning the reference
    mu: float | None = learned(None)
    var: float = learned(0.0)  # reference variance (between windows, beyond sampling noise for sentiment)
    pos: float = learned(0.0)
    neg: float = learned(0.0)

    @classmethod
    def default_name(cls, params: Mapping[str, Any]) -> str:
        return "cusum" if params["metric"] == "sentiment" else f"cusum_{params['metric']}"

    def _guard(self, w: ClosedWindow) -> tuple[float, float] | None:
        """(x, sampling variance of x), or None when the window is skipped."""
        if self.metric == "sentiment":
            return sentiment_sample(w) if w.count >= max(self.min_count, 1) else None
        if w.count < self.min_count and (self.mu is None or self.mu < self.min_count):
            return None
        return float(w.count), 0.0

    def _warm(self) -> bool:
        return self.mu is not None

    def _sigma(self, sampling: float) -> float:
        var = self.var + sampling
        if self.metric == "volume":
            var = max(var, self.mu or 0.0)  # Poisson floor
        return math.sqrt(max(var, self.sd_floor**2))

    def _judge(self, window: ClosedWindow, obs: tuple[float, float]) -> Verdict:
        x, sampling = obs
        mu = self.mu
        z = (x - mu) / self._sigma(sampling)
        # the sums are the judgement: they carry the evidence of the windows before this one
        self.pos = max(0.0, self.pos + z - self.k)
        self.neg = max(0.0, self.neg - z - self.k)
        score = max(self.pos, self.neg)
        up = self.pos >= self.neg
        anomalous = score >= self.h
        what = "mean sentiment" if self.metric == "sentiment" else "volume"
        return Verdict(
            detector=self.name,
            score=score,
            threshold=self.h,
            value=x,
            baseline=mu,
            anomalous=anomalous,
            message=(
                f"{what} {'shifted up' if up else 'shifted down'}: {x:.3g} vs reference {mu:.3g}"
                f" (CUSUM {score:.1f} >= {self.h:g})" if anomalous else
                f"{what} {x:.3g} vs reference {mu:.3g} (CUSUM {score:.1f})"
            ),
        )

    def _learn(self, window: ClosedWindow, obs: tuple[float, float], verdict: Verdict | None) -> None:
        x, sampling = obs
        if verdict is None:  # (re)learning the reference
            self.learn.append([x, sampling])
            if len(self.learn) >= self.warmup:
                n = len(self.learn)
                self.mu = sum(v for v, _ in self.learn) / n
                raw = sum((v - self.mu) ** 2 for v, _ in self.learn) / (n - 1)
                # the spread seen while learning holds the sampling noise of those windows too
                self.var = max(0.0, raw - sum(s for _, s in self.learn) / n)
                self.learn = []
                self.pos = self.neg = 0.0
        elif verdict.anomalous:
            self.pos = self.neg = 0.0
            if self.relearn:
                self.mu, self.var, self.learn = None, 0.0, []
        elif self.alpha > 0:
            d = x - self.mu
            self.mu += self.alpha * d
            self.var = max(0.0, (1 - self.alpha) * (self.var + self.alpha * (d * d - sampling)))
