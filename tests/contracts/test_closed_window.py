"""contracts.windows.ClosedWindow: its one JSON form (what windows.lua pushes to the outbox), and
the records it refuses."""
from __future__ import annotations

import math

import orjson
import pytest

from contracts.windows import ClosedWindow, WindowSpec

# an outbox item exactly as windows.lua writes it (cjson: numbers, no order)
FROM_LUA = (b'{"image":1,"neutral":1,"hop_s":60,"sentiment_sq":1.6,"topic":"T","negative":1,"text":4,'
            b'"lang":"en","count":4,"size_s":300,"start":600,"positive":2,"sentiment_sum":0.8}')


def test_an_outbox_item_parses_and_round_trips():
    w = ClosedWindow.from_json(FROM_LUA)
    assert (w.topic, w.lang, w.start, w.size_s, w.hop_s, w.count) == ("T", "en", 600, 300, 60, 4)
    assert w.spec == WindowSpec(300, 60) and w.spec.name == "300/60" and w.index == 10
    assert w.labels == {"negative": 1, "neutral": 1, "positive": 2}
    assert w.modalities == {"text": 4, "image": 1}
    assert w.sentiment_mean == pytest.approx(0.2)
    assert ClosedWindow.from_json(w.to_json()) == w
    assert orjson.loads(w.to_json()) == orjson.loads(FROM_LUA)


def test_tumbling_defaults_and_a_missing_sum_of_squares():
    w = ClosedWindow.from_json(b'{"topic":"T","lang":"*","start":60,"size_s":60,"count":0}')
    assert w.hop_s == 0 and w.step_s == 60 and w.spec.name == "60"
    assert w.sentiment_sq is None  # not kept: the variance falls back to the labels
    assert w.to_dict()["hop_s"] == 60 and "sentiment_sq" not in w.to_dict()
    assert ClosedWindow.from_json(w.to_json()).spec == w.spec


@pytest.mark.parametrize("bad", [
    b"not json", b"[]", b'{"topic":"T"}',
    b'{"topic":"T","lang":"*","start":0,"size_s":0,"count":1}',
    b'{"topic":"T","lang":"*","start":0,"size_s":60,"count":-1}',
    b'{"topic":"T","lang":"*","start":0,"size_s":60,"count":1,"hop_s":-5}',
    b'{"topic":"T","lang":"*","start":0,"size_s":60,"count":1,"sentiment_sum":"nan"}',
    b'{"topic":"T","lang":"*","start":0,"size_s":60,"count":1,"sentiment_sq":"inf"}',
    b'{"topic":"T","lang":"*","start":"x","size_s":60,"count":1}',
])
def test_unsound_records_are_refused(bad):
    with pytest.raises((ValueError, KeyError, TypeError)):
        ClosedWindow.from_json(bad)


def test_variance_from_the_sum_of_squares():
    w = ClosedWindow("T", "*", 0, 60, 4, 0.8, 1.6)
    assert math.isclose(w.sentiment_event_var, (1.6 - 4 * 0.04) / 3)
