"""The detector protocol: look at a window (with its history), return a verdict."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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


class Detector(Protocol):
    name: str

    def check(self, window: WindowState) -> Verdict | None:
        """A verdict for this window, or None when there is not enough data to judge."""
