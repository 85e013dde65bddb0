"""``select_stories``: how readers list a topic's stories (order, language filter, limit); pure logic."""
from __future__ import annotations

import pytest

from workers.stories.view import select_stories


def view(sid: str, last: float, count: int, rate: float, langs: dict[str, int]) -> dict:
    return {"id": sid, "last_seen": last, "count": count, "rate_per_min": rate, "counts": langs}


VIEWS = [view("a", 100.0, 9, 0.5, {"en": 5, "de": 4}), view("b", 300.0, 2, 0.1, {"en": 2}),
         view("c", 200.0, 4, 2.0, {"ja": 4}), view("d", 300.0, 1, 0.1, {"fr": 1})]


@pytest.mark.parametrize("order,expected", [("recent", "bdca"), ("size", "acbd"), ("growth", "cabd")])
def test_orders(order, expected):
    assert "".join(v["id"] for v in select_stories(VIEWS, order=order, limit=10)) == expected


def test_language_filter_and_limit():
    assert [v["id"] for v in select_stories(VIEWS, lang="en")] == ["b", "a"]
    assert select_stories(VIEWS, lang="zh") == []
    assert [v["id"] for v in select_stories(VIEWS, limit=1)] == ["b"]
    assert select_stories(VIEWS, limit=0) == [] and select_stories([], lang="en") == []
