"""Volume spike: a window's count against a robust baseline of the windows before it.

Robust z-score (x - median) / (1.4826 * MAD): one earlier burst does not inflate the baseline the
way a mean and standard deviation would. The scale has a Poisson floor (sqrt of the median, at least
1) so a perfectly flat history does not turn every extra event into an infinite score. Windows that
were never written (no key) before the topic's first event do not count as history: cold start.

Two entry points share that math (:func:`robust_z`):

* ``check(WindowState)`` -- stateless, on the OPEN window with the history Redis hands back
  (early alarm while a burst is still filling its window);
* ``update(ClosedWindow)`` -- online, on each CLOSED window of one (topic, language) series. The
  detector keeps the counts itself (JSON state), gap-fills missing windows with zeros, and can
  be made seasonal: with ``season`` (windows per period, e.g. 288 five-minute windows = a day)
  the count is also compared with the same time of the previous ``seasons`` periods (median
  and MAD over those periods, at the offset within +- ``season_width`` windows that fits best)
  and the SMALLER of the two scores decides. A daily peak (market open,
  evening prime time) is then normal because it happened at that time yesterday, while a burst
  must be unusual both for the last hour and for this time of day. Until one full period has
  been seen the recent baseline alone decides, so a recurring peak can alert on its first day.
"""
from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Sequence

from workers.detectors.base import ClosedWindow, Verdict
from workers.windows import WindowState


def robust_z(value: float, counts: Sequence[float]) -> tuple[float, float, float]:
    """(median, scale, score) of ``value`` against ``counts`` (non-empty)."""
    median = statistics.median(counts)
    mad = statistics.median(abs(c - median) for c in counts)
    scale = max(1.4826 * mad, math.sqrt(max(median, 0.0)), 1.0)
    return median, scale, (value - median) / scale


class VolumeSpike:
    name = "volume_spike"

    def __init__(
        self,
        threshold: float = 4.0,
        min_history: int = 3,
        min_count: int = 20,
        history: int = 24,
        season: int = 0,
        seasons: int = 3,
        season_width: int = 1,
        name: str | None = None,
    ) -> None:
        if min_history < 1 or history < min_history:
            raise ValueError("need 1 <= min_history <= history")
        if season < 0 or seasons < 1 or season_width < 0 or (season and 2 * season_width >= season):
            raise ValueError("bad season parameters")
        self.threshold = threshold
        self.min_history = min_history
        self.min_count = min_count
        self.history = history  # closed windows in the rolling baseline (update only)
        self.season = season
        self.seasons = seasons
        self.season_width = season_width
        if name is not None:
            self.name = name
        # learned state (update only): the last counts, contiguous, newest last
        self._keep = max(history, season * seasons + season_width + 1 if season else 0)
        self._counts: deque[int] = deque(maxlen=self._keep)
        self._last: int | None = None  # grid index of the newest window seen

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
        anomalous = score >= self.threshold and window.count >= self.min_count
        return Verdict(
            detector=self.name,
            score=score,
            threshold=self.threshold,
            value=float(window.count),
            baseline=float(median),
            anomalous=anomalous,
            message=f"{window.count} events in {window.size_s}s window vs median {median:g} (robust z {score:.1f})",
        )

    # --- closed windows -------------------------------------------------------------------------
    def _seasonal(self, index: int, value: int) -> tuple[float, float] | None:
        """(median, score) of ``value`` against the same time of the previous periods: for each
        offset o in [-season_width, season_width] the counts at index - j*season + o (j = 1..seasons)
        form a baseline; the offset that explains ``value`` best (lowest score) wins, so a recurring
        peak that comes a window early or late is still "the usual peak"."""
        n = len(self._counts)
        best = None
        for o in range(-self.season_width, self.season_width + 1):
            vals = []
            for j in range(1, self.seasons + 1):
                back = self._last - (index - j * self.season + o)  # 0 = newest stored
                if 0 <= back < n:
                    vals.append(self._counts[n - 1 - back])
            if vals:
                median, _, score = robust_z(value, vals)
                if best is None or score < best[1]:
                    best = (median, score)
        return best

    def update(self, window: ClosedWindow) -> Verdict | None:
        index = window.index
        if self._last is not None:
            if index <= self._last:
                return None  # redelivered or out of order: ignored
            # windows never written between two closed ones had no events: zeros
            for _ in range(min(index - self._last - 1, self._keep)):
                self._counts.append(0)
            self._last = index - 1  # the newest stored count is now the previous window's
        verdict = None
        recent = list(self._counts)[-self.history :]
        if len(recent) >= self.min_history:
            median, _, score = robust_z(window.count, recent)
            note = f"median of last {len(recent)} {median:g}"
            seasonal = self._seasonal(index, window.count) if self.season else None
            if seasonal is not None:
                s_median, s_score = seasonal
                note += f", same time earlier {s_median:g} (z {s_score:.1f})"
                if s_score < score:
                    median, score = s_median, s_score
            verdict = Verdict(
                detector=self.name,
                score=score,
                threshold=self.threshold,
                value=float(window.count),
                baseline=float(median),
                anomalous=score >= self.threshold and window.count >= self.min_count,
                message=f"{window.count} events in {window.size_s}s window vs {note} (robust z {score:.1f})",
            )
        self._counts.append(int(window.count))
        self._last = index
        return verdict

    def params(self) -> dict:
        return {
            "threshold": self.threshold, "min_history": self.min_history, "min_count": self.min_count,
            "history": self.history, "season": self.season, "seasons": self.seasons,
            "season_width": self.season_width, "name": self.name,
        }

    def state(self) -> dict:
        return {"kind": "volume_spike", "params": self.params(), "last": self._last, "counts": list(self._counts)}

    @classmethod
    def from_state(cls, state: dict) -> "VolumeSpike":
        det = cls(**state["params"])
        det._last = state.get("last")
        det._counts.extend(int(c) for c in state.get("counts", ()))
        return det
