"""A story's record (``Story``) and how an event is counted in it (``join``: languages, sentiment,
growth rate, representatives); stories.lua's ``join`` does the same. docs/design.md, "Stories"."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from workers.stories.items import StoryItem, excerpt
from workers.stories.rules import StoryRules


@dataclass
class Story:
    id: str
    topic: str
    first_ts: float
    last_ts: float
    count: int = 0
    rate: float = 0.0  # decayed event count (time constant rate_tau_s)
    rate_ts: float = 0.0
    langs: dict[str, dict] = field(default_factory=dict)  # lang -> {count, sentiment_sum, rep}

    def to_json(self) -> dict:
        return {"id": self.id, "topic": self.topic, "first_ts": self.first_ts, "last_ts": self.last_ts,
                "count": self.count, "rate": self.rate, "rate_ts": self.rate_ts, "langs": self.langs}

    @classmethod
    def from_json(cls, d: dict) -> "Story":
        return cls(d["id"], d["topic"], float(d["first_ts"]), float(d["last_ts"]), int(d["count"]),
                   float(d["rate"]), float(d["rate_ts"]), dict(d.get("langs") or {}))


def join(story: Story, item: StoryItem, ts: float, sim: float, rep_sim: float, rules: StoryRules) -> bool:
    """Count ``item`` in ``story`` (its vector already added to the sum). ``sim``: its cosine to the
    new centroid; ``rep_sim``: that of its language's representative. Returns whether it becomes
    the representative. The same steps as stories.lua's ``join``."""
    story.count += 1
    story.first_ts = min(story.first_ts, ts)
    story.last_ts = max(story.last_ts, ts)
    if ts >= story.rate_ts:
        story.rate = story.rate * math.exp(-(ts - story.rate_ts) / rules.rate_tau_s) + 1.0
        story.rate_ts = ts
    else:  # a late event counts for less: it is seen from the rate's present
        story.rate += math.exp(-(story.rate_ts - ts) / rules.rate_tau_s)
    lang = story.langs.setdefault(item.lang, {"count": 0, "sentiment_sum": 0.0, "rep": None})
    lang["count"] += 1
    lang["sentiment_sum"] += float(item.sentiment)
    if lang["rep"] is not None and sim <= rep_sim:
        lang["rep"]["sim"] = rep_sim
        return False
    lang["rep"] = {"id": item.event_id, "lang": item.lang, "text": excerpt(item.text, rules.excerpt_chars),
                   "link": item.link, "sim": sim}
    return True
