"""``babelwatch bench stories``: B-cubed and the cross-lingual merge share by hand, the shipped
labelled set's shape, and the quality goals on it with the real model (whole set and held-out halves)."""
from __future__ import annotations

from collections import defaultdict

import pytest

from babelwatch.bench.stories import (GOAL_F1, GOAL_MERGE, assign, bcubed, cross_lingual_merge, embed, held_out,
                                      items_of, load_set, quality)
from workers.stories.rules import StoryRules


def test_bcubed_by_hand():
    gold = ["a", "a", "a", "b", "b"]
    assert bcubed(gold, [1, 1, 1, 2, 2]) == (1.0, 1.0, 1.0)
    p, r, f = bcubed(gold, [1, 1, 1, 1, 1])  # one cluster: recall 1, precision (3*3/5 + 2*2/5)/5
    assert r == 1.0 and p == pytest.approx((3 * 0.6 + 2 * 0.4) / 5) and f == pytest.approx(2 * p / (p + 1))
    p, r, _ = bcubed(gold, [None] * 5)  # every item alone
    assert p == 1.0 and r == pytest.approx((3 * (1 / 3) + 2 * 0.5) / 5)
    p, r, _ = bcubed(gold, [1, 1, 2, 2, 2])
    assert p == pytest.approx((1 + 1 + 1 / 3 + 2 / 3 + 2 / 3) / 5)
    assert r == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 + 1) / 5)
    with pytest.raises(ValueError):
        bcubed(gold, [1])


def test_cross_lingual_merge_by_hand():
    gold = ["a", "a", "a", "b", "b", "c"]
    langs = ["en", "de", "ja", "en", "fr", "en"]
    assert cross_lingual_merge(gold, [1, 1, 1, 2, 2, 3], langs) == (1.0, 2)
    assert cross_lingual_merge(gold, [1, 2, 3, 4, 5, 6], langs) == (0.0, 2)  # nothing spans languages
    assert cross_lingual_merge(gold, [1, 1, 2, 2, 2, 2], langs) == (0.5, 2)  # b drowned in a bigger story
    assert cross_lingual_merge(gold, [1, 1, 1, 1, 1, 1], langs) == (0.0, 2)  # one story of everything


def test_the_labelled_set_has_the_promised_shape():
    rows = load_set()
    assert len(rows) >= 150 and len({r["id"] for r in rows}) == len(rows)
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)  # stream order
    langs = defaultdict(set)
    topics = defaultdict(set)
    for r in rows:
        langs[r["story"]].add(r["lang"])
        topics[r["story"]].add(r["topic"])
    multi = [s for s, ls in langs.items() if len(ls) > 1]
    assert len(multi) >= 25
    assert {"en", "de", "fr", "es", "ja", "zh"} <= {r["lang"] for r in rows}
    assert all(len(t) == 1 for t in topics.values())  # a story belongs to one topic
    singles = {s for s, ls in langs.items() if len(ls) == 1}
    assert {next(iter(topics[s])) for s in singles} == {r["topic"] for r in rows}  # distractors on every topic


@pytest.fixture(scope="module")
def embedded():
    rows = load_set()
    return rows, items_of(rows, embed(rows))


def test_quality_goals_on_the_set_with_the_real_model(embedded):
    rows, items = embedded
    rules = StoryRules()  # the settings' defaults
    q = quality(rows, assign(items, rules))
    assert q["f1"] >= GOAL_F1 and q["cross_lingual_merge"] >= GOAL_MERGE, q


def test_held_out_halves_reach_the_goal_with_a_threshold_tuned_on_the_other(embedded):
    rows, items = embedded
    for half in held_out(rows, items, StoryRules(), [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6]):
        assert half["f1"] >= GOAL_F1 and half["cross_lingual_merge"] >= GOAL_MERGE, half
