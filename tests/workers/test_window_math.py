"""window_start and fold (workers/windows.py): pure window arithmetic, no Redis."""
from __future__ import annotations

import random

import pytest
from bw_factories import make_scored

from contracts.schema import ALL_LANGS, LABELS
from workers.windows import WindowDelta, fold, window_start

S = 1_714_564_800  # a multiple of 60 and of 3600


@pytest.mark.parametrize(
    "ts, size, expected",
    [
        (0, 60, 0),
        (0.0001, 60, 0),
        (59.999999, 60, 0),
        (60, 60, 60),
        (60.0, 60, 60),
        (61, 60, 60),
        (119.9, 60, 60),
        (S, 60, S),
        (S - 0.5, 60, S - 60),
        (S + 59.999, 60, S),
        (S + 1799, 3600, S),
        (S + 3600, 3600, S + 3600),
        (S + 0.3, 1, S),
        (7, 5, 5),
    ],
)
def test_window_start_alignment_and_boundaries(ts, size, expected):
    got = window_start(ts, size)
    assert got == expected
    assert isinstance(got, int)


def test_window_start_contains_ts_and_is_aligned():
    rng = random.Random(1234)
    for _ in range(5000):
        size = rng.choice([1, 5, 10, 60, 300, 3600])
        ts = rng.uniform(0, 2e9)
        start = window_start(ts, size)
        assert start >= 0
        assert start % size == 0
        assert start <= ts < start + size


def test_window_start_never_negative_for_non_negative_ts():
    for ts in (0, 0.0, 1e-12, 0.5, 59.9):
        assert window_start(ts, 60) == 0


def test_window_start_floors_before_the_epoch():
    """Pre-epoch times still land in the window that contains them (floor, not truncation)."""
    assert window_start(-1, 60) == -60
    assert window_start(-60, 60) == -60
    assert window_start(-61, 60) == -120


def test_window_delta_add():
    d = WindowDelta()
    assert d.count == 0 and d.labels == {label: 0 for label in LABELS} and d.sentiment_sum == 0.0
    d.add(make_scored(label="positive", sentiment=0.5))
    d.add(make_scored(label="negative", sentiment=-0.25))
    assert d.count == 2
    assert d.labels == {"negative": 1, "neutral": 0, "positive": 1}
    assert d.sentiment_sum == pytest.approx(0.25)


def test_window_delta_defaults_are_not_shared():
    a, b = WindowDelta(), WindowDelta()
    a.add(make_scored(label="neutral"))
    assert b.labels["neutral"] == 0 and b.count == 0


def test_fold_empty():
    assert dict(fold([], 60)) == {}


def test_fold_per_lang_and_all_langs():
    batch = [
        make_scored("AAPL", "en", "positive", S + 1, sentiment=0.7),
        make_scored("AAPL", "en", "positive", S + 2, sentiment=0.5),
        make_scored("AAPL", "de", "negative", S + 3, sentiment=-0.9),
        make_scored("AAPL", "und", "neutral", S + 4, sentiment=0.0),
        make_scored("TSLA", "en", "neutral", S + 59, sentiment=0.1),
    ]
    deltas = fold(batch, 60)
    assert set(deltas) == {
        ("AAPL", "en", S), ("AAPL", "de", S), ("AAPL", "und", S), ("AAPL", ALL_LANGS, S),
        ("TSLA", "en", S), ("TSLA", ALL_LANGS, S),
    }
    en = deltas[("AAPL", "en", S)]
    assert en.count == 2
    assert en.labels == {"negative": 0, "neutral": 0, "positive": 2}
    assert en.sentiment_sum == pytest.approx(1.2)

    de = deltas[("AAPL", "de", S)]
    assert (de.count, de.labels["negative"], de.sentiment_sum) == (1, 1, pytest.approx(-0.9))

    assert deltas[("AAPL", "und", S)].labels == {"negative": 0, "neutral": 1, "positive": 0}

    every = deltas[("AAPL", ALL_LANGS, S)]
    assert every.count == 4
    assert every.labels == {"negative": 1, "neutral": 1, "positive": 2}
    assert every.sentiment_sum == pytest.approx(0.3)

    tsla = deltas[("TSLA", ALL_LANGS, S)]
    assert tsla.count == 1 and tsla.labels["neutral"] == 1
    assert tsla.sentiment_sum == pytest.approx(0.1)
    assert deltas[("TSLA", "en", S)].count == 1


def test_fold_all_langs_is_the_sum_of_the_langs():
    rng = random.Random(7)
    langs, topics = ["en", "de", "zh", "und"], ["A", "B"]
    batch = [
        make_scored(rng.choice(topics), rng.choice(langs), rng.choice(LABELS), S + rng.uniform(0, 300),
                    sentiment=rng.uniform(-1, 1))
        for _ in range(400)
    ]
    deltas = fold(batch, 60)
    for (topic, lang, start), d in deltas.items():
        if lang != ALL_LANGS:
            continue
        parts = [v for (t, l, s), v in deltas.items() if t == topic and s == start and l != ALL_LANGS]
        assert d.count == sum(p.count for p in parts)
        for label in LABELS:
            assert d.labels[label] == sum(p.labels[label] for p in parts)
        assert d.sentiment_sum == pytest.approx(sum(p.sentiment_sum for p in parts))
        assert sum(d.labels.values()) == d.count
    assert sum(d.count for (t, l, s), d in deltas.items() if l == ALL_LANGS) == len(batch)
    assert sum(d.count for (t, l, s), d in deltas.items() if l != ALL_LANGS) == len(batch)


def test_fold_batch_straddling_a_boundary_lands_in_two_windows():
    batch = [
        make_scored("BTC", "en", "negative", S + 59.999, sentiment=-0.5),
        make_scored("BTC", "en", "positive", S + 60.0, sentiment=0.25),
        make_scored("BTC", "en", "positive", S + 61, sentiment=0.25),
    ]
    deltas = fold(batch, 60)
    assert set(deltas) == {
        ("BTC", "en", S), ("BTC", ALL_LANGS, S), ("BTC", "en", S + 60), ("BTC", ALL_LANGS, S + 60),
    }
    for lang in ("en", ALL_LANGS):
        old, new = deltas[("BTC", lang, S)], deltas[("BTC", lang, S + 60)]
        assert (old.count, old.labels["negative"], old.labels["positive"]) == (1, 1, 0)
        assert old.sentiment_sum == pytest.approx(-0.5)
        assert (new.count, new.labels["negative"], new.labels["positive"]) == (2, 0, 2)
        assert new.sentiment_sum == pytest.approx(0.5)


def test_fold_uses_the_given_window_size():
    batch = [make_scored("X", "en", "neutral", S + k * 60) for k in range(5)]
    assert {start for (_, lang, start) in fold(batch, 60) if lang == ALL_LANGS} == {S + k * 60 for k in range(5)}
    assert {start for (_, lang, start) in fold(batch, 300) if lang == ALL_LANGS} == {S}
    assert fold(batch, 300)[("X", ALL_LANGS, S)].count == 5
