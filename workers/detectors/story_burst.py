"""``StoryBurst``: an emerging story that grows fast and spreads across languages.

Fed the snapshots of one topic's stories (``workers.stories.view.story_view`` dicts, as the store
returns them after each batch), in the style of the window detectors (base.py): parameters and
learned state are fields, ``state()`` / ``from_state`` carry it through Redis as JSON, ``update`` is
judge -> learn. It learns the topic's usual story growth (the median of the latest rates of its
``memory`` most recently updated stories, the judged one left out, so one burst cannot make itself
usual) and fires once per story when a young story grows ``threshold`` times faster than usual, at
least ``min_rate_per_min``, in at least ``min_languages`` languages with ``min_count`` events.
docs/design.md, "Stories".
"""
from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from workers.detectors.base import Verdict


@dataclass(eq=False)
class StoryBurst:
    kind: ClassVar[str] = "story_burst"

    threshold: float = 3.0  # rate / the topic's usual rate
    min_rate_per_min: float = 0.5
    min_languages: int = 2
    min_count: int = 5
    max_age_s: float = 3600.0  # only emerging stories: first event at most this long ago
    memory: int = 64  # stories whose latest rate makes "usual"
    min_stories: int = 5  # cold until this many other stories were seen
    floor_rate_per_min: float = 0.05  # the usual rate is at least this (a quiet topic is not "usual 0")
    name: str = "story_burst"
    # learned state
    rates: dict = field(default_factory=dict, init=False)  # story id -> its latest rate, oldest update first
    fired: deque = field(default_factory=lambda: deque(maxlen=512), init=False)  # story ids alerted

    def __post_init__(self) -> None:
        if not (self.threshold > 1 and self.min_languages >= 1 and self.min_count >= 1 and self.memory >= 2
                and 1 <= self.min_stories < self.memory and self.max_age_s > 0 and self.min_rate_per_min >= 0 and self.floor_rate_per_min > 0):
            raise ValueError(f"invalid story_burst parameters: {self.params()}")

    def params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("threshold", "min_rate_per_min", "min_languages", "min_count",
                                               "max_age_s", "memory", "min_stories", "floor_rate_per_min",
                                               "name")}

    def state(self) -> dict[str, Any]:
        return {"kind": self.kind, "params": self.params(), "rates": list(self.rates.items()),
                "fired": list(self.fired)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "StoryBurst":
        det = cls(**state["params"])
        det.rates = {sid: float(r) for sid, r in state.get("rates") or ()}
        det.fired.extend(state.get("fired") or ())
        return det

    def update(self, story: Mapping[str, Any], now: float | None = None) -> Verdict | None:
        """Judge a story snapshot (``now``: the topic's event time, default the story's last event),
        then learn its rate. None while cold (fewer than ``min_stories`` other stories seen) and for
        a story already alerted."""
        sid = story["id"]
        rate = float(story.get("rate_per_min") or 0.0)
        if sid in self.fired or rate != rate:  # alerted once; NaN guard
            return None
        others = [r for s, r in self.rates.items() if s != sid]
        verdict = self._judge(story, rate, now, statistics.median(others)) if len(others) >= self.min_stories else None
        if verdict is not None and verdict.anomalous:
            self.fired.append(sid)
            self.rates.pop(sid, None)
        else:
            self.rates.pop(sid, None)  # re-inserted: the most recent
            self.rates[sid] = rate
            while len(self.rates) > self.memory:
                self.rates.pop(next(iter(self.rates)))
        return verdict

    def _judge(self, story: Mapping[str, Any], rate: float, now: float | None, median: float) -> Verdict:
        usual = max(median, self.floor_rate_per_min)
        langs = [lang for lang, n in (story.get("counts") or {}).items() if n > 0]
        now = float(story["last_seen"]) if now is None else now
        young = now - float(story["first_seen"]) <= self.max_age_s
        score = rate / usual
        anomalous = (score >= self.threshold and rate >= self.min_rate_per_min and len(langs) >= self.min_languages
                     and int(story.get("count", 0)) >= self.min_count and young)
        message = (f"story {story['id']} grows {rate:.2f}/min ({score:.1f}x usual {usual:.2f}/min) in "
                   f"{len(langs)} languages ({', '.join(sorted(langs))}), {story.get('count', 0)} events")
        return Verdict(self.name, round(score, 4), self.threshold, rate, usual, anomalous, message)
