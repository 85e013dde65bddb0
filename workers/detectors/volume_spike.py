"""Volume spike: the current window's count against a robust baseline of the windows before it.

Robust z-score (x - median) / (1.4826 * MAD): one earlier burst does not inflate the baseline the
way a mean and standard deviation would. The scale has a Poisson floor (sqrt of the median, at least
1) so a perfectly flat history does not turn every extra event into an infinite score. Windows that
were never written (no key) before the topic's first event do not count as history: cold start.
"""
from __future__ import annotations

import math
import statistics

from workers.detectors.base import Verdict
from workers.windows import WindowState


class VolumeSpike:
    name = "volume_spike"

    def __init__(self, threshold: float = 4.0, min_history: int = 3, min_count: int = 20) -> None:
        self.threshold = threshold
        self.min_history = min_history
        self.min_count = min_count

    def check(self, window: WindowState) -> Verdict | None:
        hist = list(window.history)
        # leading gaps are "before this topic existed"; later gaps are real zero-volume windows
        while hist and hist[0] is None:
            hist.pop(0)
        counts = [c or 0 for c in hist]
        if len(counts) < self.min_history:
            return None
        median = statistics.median(counts)
        mad = statistics.median(abs(c - median) for c in counts)
        scale = max(1.4826 * mad, math.sqrt(median), 1.0)
        score = (window.count - median) / scale
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
