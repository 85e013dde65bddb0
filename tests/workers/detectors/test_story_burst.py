"""``StoryBurst`` alone: fires once for a young story growing fast in several languages, not for a
fast one-language story, a slow multilingual one or an old one; its state survives a round trip;
and its bench entry finds the injected bursts."""
from __future__ import annotations

import math

import pytest

from babelwatch.bench.story_burst import evaluate
from workers.detectors.story_burst import StoryBurst


def snap(sid: str, rate: float, counts: dict[str, int], first: float = 0.0, last: float = 600.0) -> dict:
    return {"id": sid, "rate_per_min": rate, "counts": counts, "count": sum(counts.values()),
            "first_seen": first, "last_seen": last}


def warmed(**params) -> StoryBurst:
    det = StoryBurst(**params)
    verdicts = [det.update(snap(f"bg{k}", 0.1 + 0.01 * k, {"en": 2})) for k in range(10)]
    assert not any(v is not None and v.anomalous for v in verdicts)
    return det


def test_cold_until_enough_other_stories():
    det = StoryBurst(min_stories=5)
    assert [det.update(snap(f"s{k}", 3.0, {"en": 5, "de": 5})) for k in range(5)] == [None] * 5
    assert det.update(snap("s5", 3.0, {"en": 5, "de": 5})) is not None


def test_a_young_fast_multilingual_story_fires_once():
    det = warmed()
    v = det.update(snap("burst", 2.0, {"en": 4, "ja": 3, "zh": 2}))
    assert v.anomalous and v.value == 2.0 and v.score >= 3 and "3 languages" in v.message
    assert det.update(snap("burst", 2.5, {"en": 5, "ja": 3, "zh": 2})) is None  # already alerted


@pytest.mark.parametrize("story", [
    snap("one_language", 3.0, {"en": 20}),                          # fast, one language
    snap("slow", 0.2, {"en": 3, "de": 3, "fr": 3}),                 # many languages, usual rate
    snap("few", 3.0, {"en": 2, "de": 2}),                           # fast but 4 events < min_count
    snap("old", 3.0, {"en": 5, "de": 5}, first=0.0, last=7200.0),   # not emerging any more
    snap("nan", math.nan, {"en": 5, "de": 5}),
])
def test_what_is_not_a_burst_does_not_fire(story):
    det = warmed()
    v = det.update(story)
    assert v is None or not v.anomalous


def test_one_burst_cannot_make_itself_usual():
    det = warmed()
    for k, rate in enumerate((0.2, 0.3, 0.4)):  # the burst climbing, not yet in enough languages
        v = det.update(snap("b", rate, {"en": 3 + k}))
        assert not v.anomalous
    assert det.update(snap("b", 0.6, {"en": 4, "de": 1, "fr": 1})).anomalous


def test_state_round_trip_behaves_the_same():
    det = warmed()
    det.update(snap("burst", 2.0, {"en": 4, "ja": 3, "zh": 2}))
    twin = StoryBurst.from_state(det.state())
    assert twin.state() == det.state()
    for d in (det, twin):
        assert d.update(snap("burst", 3.0, {"en": 9, "ja": 3})) is None
    assert det.update(snap("b2", 2.0, {"en": 3, "de": 3})) == twin.update(snap("b2", 2.0, {"en": 3, "de": 3}))


def test_invalid_parameters_are_refused():
    for bad in ({"threshold": 1.0}, {"min_languages": 0}, {"memory": 1}, {"min_stories": 100}):
        with pytest.raises(ValueError):
            StoryBurst(**bad)


def test_bench_entry_finds_the_injected_bursts():
    r = evaluate(seed=3, n_streams=10, hours=6)
    assert r.bursts > 5 and r.recall >= 0.9 and r.precision >= 0.75 and r.delay_min_median < 5
