"""The pipeline's story stage without servers: ids recalled for a retried batch, bounded memory,
one story_burst per topic, the stories behind a series."""
from __future__ import annotations

from workers.detectors.story_burst import StoryBurst
from workers.stories import StoryItem
from workers.story_stage import StoryStage, series_stories


class Once:
    """An assigner that, like the Redis store, answers None for an item it already applied."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def assign(self, items):
        out = []
        for it in items:
            out.append(None if it.event_id in self.seen else f"s-{it.event_id}")
            self.seen.add(it.event_id)
        return out


def item(eid: str, topic: str = "T") -> StoryItem:
    return StoryItem(topic, ("t:0", 1), eid, "en", "some words", 0.1, None, 1.0)


async def test_a_retried_batch_keeps_its_ids_within_bounds():
    stage = StoryStage(Once(), remember=3)
    items = [item(f"e{i}") for i in range(5)]
    assert await stage.assign(items) == [f"s-e{i}" for i in range(5)]
    # the store skips them all now; the last 3 are remembered, the older ones are not
    assert await stage.assign(items) == [None, None, "s-e2", "s-e3", "s-e4"]
    assert len(stage._known) == 3


def snap(sid: str, rate: float, count: int = 10, langs=("en", "de")) -> dict:
    return {"id": sid, "first_seen": 100.0, "last_seen": 110.0, "count": count, "rate_per_min": rate,
            "counts": {lang: 1 for lang in langs}, "languages": list(langs), "sentiment": {},
            "representatives": {lang: {"id": f"{sid}-{lang}", "text": lang} for lang in langs}}


def test_story_burst_is_per_topic():
    stage = StoryStage(Once(), StoryBurst, rate_tau_s=600)
    # topic A learns a slow usual rate from 6 stories; topic B has seen nothing
    assert all(not v.verdict.anomalous for v in stage.bursts({("A", f"a{i}"): snap(f"a{i}", 0.1) for i in range(6)})
               if v.verdict is not None)
    assert stage.bursts({("B", "hot"): snap("hot", 5.0)}) == []  # cold: A's stories do not count for B
    (v,) = stage.bursts({("A", "hot"): snap("hot", 5.0)})
    assert v.verdict.anomalous and v.topic == "A" and v.stories[0]["id"] == "hot"
    assert set(v.samples) == {"hot-en", "hot-de"}
    obs = [o for o in v.observations() if o.active]
    assert obs[0].labels["detector"] == "story_burst" and "hot" not in obs[0].labels.values()


def test_series_stories_largest_first_per_language_and_all():
    views = {("T", "a"): snap("a", 1, count=3, langs=("en",)), ("T", "b"): snap("b", 1, count=9)}
    got = series_stories(views, [("T", "en", "a"), ("T", "de", "b"), ("T", "en", "gone")], "*")
    assert [s["id"] for s in got[("T", "*")]] == ["b", "a"]
    assert [s["id"] for s in got[("T", "en")]] == ["a"]
    assert [s["id"] for s in got[("T", "de")]] == ["b"]
