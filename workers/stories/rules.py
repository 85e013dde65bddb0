"""The story settings the rules run with (``StoryRules``), from contracts/settings.py.
docs/design.md, "Stories"."""
from __future__ import annotations

from dataclasses import dataclass

# Pseudo-count of a language's running center: the first events of a language are only partly
# taken as its center (5 measured best of 2/5/10/20 on the labelled set, docs/design.md "Stories").
CENTER_PRIOR = 5.0
DIM = 384


@dataclass(frozen=True)
class StoryRules:
    threshold: float = 0.45
    max_active: int = 1000
    quiet_s: float = 3600.0
    excerpt_chars: int = 280
    rate_tau_s: float = 600.0
    dim: int = DIM

    @classmethod
    def from_settings(cls, s) -> "StoryRules":
        return cls(threshold=s.story_threshold, max_active=s.story_max_active, quiet_s=s.story_quiet_s,
                   excerpt_chars=s.story_excerpt_chars, rate_tau_s=s.story_rate_tau_s)
