"""Volume spike: a window's count against a robust baseline of the windows before it.

Robust z-score (median, MAD, Poisson floor), shared by ``check`` (the open window, stateless) and
``update`` (closed windows, online, optionally seasonal: the smaller of the recent and the
same-time-of-day score decides).
Algorithm, parameters and defaults: docs/detectors.md#volume_spike
"""
from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Annotated, Sequence

from pydantic import Field

from workers.detectors.base import ClosedWindow, InSeconds, OnlineDetector, Verdict, learned
from workers.windows import WindowState


def robust_z(value: float, counts: Sequence[float]) -> tuple[float, float, float]:
    """(median, scale, score) of ``value`` against ``counts`` (non-empty)."""
    median = statistics.median(counts)
    mad = statistics.median(abs(c - median) for c in counts)
    scale = max(1.4826 * mad, math.sqrt(max(median, 0.0)), 1.0)
    return median, scale, (value - median) / scale


class VolumeSpike(OnlineDetector):
    kind = "volume_spike"
    # a config's closed windows are final and all of one size: there the detector can be stricter
    # than the open-window alarm and compare with the same time of day
    config_defaults = {"threshold": 5.0, "min_history": 6, "season_s": 86_400}

    threshold: Annotated[float, Field(gt=0, description="robust z-score that fires")] = 4.0
    min_history: Annotated[int, Field(ge=1, description="closed windows before the first verdict")] = 3
    min_count: Annotated[int, Field(ge=0, description="no alert for windows with fewer events")] = 20
    history: Annotated[int, Field(ge=1, description="closed windows in the rolling median/MAD")] = 24
    season: Annotated[int, Field(ge=0, description="windows per period of the seasonal baseline, 0 = off"),
                      InSeconds("season_s", "period of the seasonal baseline in seconds, 0 = off")] = 0
    seasons: Annotated[int, Field(ge=1, description="periods the seasonal baseline looks back")] = 3
    season_width: Annotated[int, Field(ge=0, description="+- windows around the same time of an earlier period")] = 1
    counts: deque[int] = learned(default_factory=deque)  # the last counts, contiguous, newest last

    def __post_init__(self) -> None:
        super().__post_init__()
        # enough for the recent baseline and for every seasonal look-back
        self._keep = max(self.history, self.season * self.seasons + self.season_width + 1 if self.season else 0)
        self.counts = deque(maxlen=self._keep)

    def _validate(self) -> None:
        if self.history < self.min_history:
            raise ValueError("need min_history <= history")
        if self.season and 2 * self.season_width >= self.season:
            raise ValueError("need season > 2 * season_width")

    # --- open window ----------------------------------------------------------------------------
    def check(self, window: WindowState) -> Verdict | None:
        hist = list(window.history)
        # leading gaps are "before this topic existed"; later gaps are real zero-volume windows
        while hist and hist[0] is None:
            hist.pop(0)
        counts = [c or 0 for c in hist]
        if len(counts) < self.min_history:
            return None
        median, _, score = robust_z(window.count, counts)
        note = f"median {median:g}"
        return self._verdict(window, median, score, note)

    # --- closed windows -------------------------------------------------------------------------
    def _missed(self, n: int) -> None:
        self.counts.extend([0] * min(n, self._keep))  # windows never written had no events

    def _warm(self) -> bool:
        return len(self.counts) >= self.min_history

    def _judge(self, window: ClosedWindow, _x: ClosedWindow) -> Verdict:
        recent = list(self.counts)[-self.history :]
        median, _, score = robust_z(window.count, recent)
        note = f"median of last {len(recent)} {median:g}"
        seasonal = self._seasonal(window.count) if self.season else None
        if seasonal is not None:
            s_median, s_score = seasonal
            note += f", same time earlier {s_median:g} (z {s_score:.1f})"
            if s_score < score:
                median, score = s_median, s_score
        return self._verdict(window, median, score, note)

    def _learn(self, window: ClosedWindow, _x: ClosedWindow, verdict: Verdict | None) -> None:
        self.counts.append(int(window.count))

    def _seasonal(self, value: int) -> tuple[float, float] | None:
        """(median, score) of ``value`` against the same time of the previous periods: for each
        offset o in [-season_width, season_width] the counts j*season - o windows back
        (j = 1..seasons) form a baseline; the offset that explains ``value`` best (lowest score)
        wins, so a recurring peak that comes a window early or late is still "the usual peak"."""
        n = len(self.counts)
        best = None
        for o in range(-self.season_width, self.season_width + 1):
            vals = []
            for j in range(1, self.seasons + 1):
                back = j * self.season - o - 1  # 0 = newest stored, the window just before this one
                if 0 <= back < n:
                    vals.append(self.counts[n - 1 - back])
            if vals:
                median, _, score = robust_z(value, vals)
                if best is None or score < best[1]:
                    best = (median, score)
        return best

    def _verdict(self, window: ClosedWindow | WindowState, median: float, score: float, note: str) -> Verdict:
        return Verdict(
            detector=self.name,
            score=score,
            threshold=self.threshold,
            value=float(window.count),
            baseline=float(median),
            anomalous=score >= self.threshold and window.count >= self.min_count,
            message=f"{window.count} events in {window.size_s}s window vs {note} (robust z {score:.1f})",
        )
