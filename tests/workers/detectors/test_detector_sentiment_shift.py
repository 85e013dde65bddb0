"""SentimentShift (workers/detectors/sentiment_shift.py): EWMA mean/variance of the window
sentiment mean, with the window's own sampling noise in the band."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workers.detectors.base import ClosedWindow, Verdict
from workers.detectors.sentiment_shift import SentimentShift

SIZE = 60


def sw(i: int, mean: float, n: int, rng: np.random.Generator | None = None) -> ClosedWindow:
    """A window of ``n`` events whose true mean sentiment is ``mean``: labels drawn per event
    (sentiment 0.75 * (+1 / 0 / -1)), sums and sums of squares from them. Without rng: exact."""
    d = mean / 0.75
    p = [(0.6 - d) / 2, 0.4, (0.6 + d) / 2]  # negative, neutral, positive
    if rng is None:
        neg, neu, pos = (round(n * x) for x in p)
        neu = n - neg - pos
    else:
        neg, neu, pos = (int(x) for x in rng.multinomial(n, p))
    return ClosedWindow(
        topic="AAPL", lang="en", start=i * SIZE, size_s=SIZE, count=n, sentiment_sum=0.75 * (pos - neg),
        sentiment_sq=0.5625 * (pos + neg), labels={"negative": neg, "neutral": neu, "positive": pos},
    )


def run(det, means, counts, rng=None, first: int = 0) -> list[Verdict | None]:
    return [det.update(sw(first + i, m, n, rng)) for i, (m, n) in enumerate(zip(means, counts))]


def alarms(out) -> list[int]:
    return [i for i, v in enumerate(out) if v is not None and v.anomalous]


@pytest.fixture
def det() -> SentimentShift:
    return SentimentShift(alpha=0.1, threshold=4.0, min_count=20, min_history=8)


def test_cold_start(det):
    out = run(det, [0.1] * 8 + [-0.4], [100] * 9)
    assert out[:8] == [None] * 8
    assert out[8] is not None and out[8].anomalous


def test_min_count_windows_neither_score_nor_update(det):
    rng = np.random.default_rng(0)
    run(det, [0.1] * 20, [100] * 20, rng)
    before = (det.mean, det.var, det.state()["n"])
    assert det.update(sw(20, -0.4, 19)) is None  # 19 < min_count: skipped
    assert det.update(sw(21, -0.4, 5)) is None
    assert (det.mean, det.var, det.state()["n"]) == before
    assert det.update(sw(22, 0.1, 20)) is not None  # 20 is enough


def test_small_windows_do_not_count_towards_cold_start(det):
    out = run(det, [0.1] * 12, [100, 5] * 6)
    assert all(v is None for v in out)  # only six windows passed the guard


def test_fires_on_a_level_shift_and_says_which_way():
    rng = np.random.default_rng(1)
    det = SentimentShift()
    means = [0.15] * 60 + [-0.15] * 20
    out = run(det, means, [120] * 80, rng)
    fired = alarms(out)
    assert fired and fired[0] == 60
    v = out[60]
    assert v.value < v.baseline and "fell" in v.message
    assert v.score >= v.threshold and v.detector == "sentiment_shift"


def test_upward_shift_rises(det):
    rng = np.random.default_rng(2)
    out = run(det, [-0.1] * 40 + [0.25] * 5, [150] * 45, rng)
    assert 40 in alarms(out) and "rose" in out[40].message


def test_quiet_on_noise_with_varying_volume():
    rng = np.random.default_rng(3)
    det = SentimentShift()
    counts = (60 + 140 * (0.5 + 0.5 * np.sin(np.arange(3000) / 40))).astype(int) + 20
    out = run(det, [0.1] * 3000, counts.tolist(), rng)
    assert alarms(out) == []


def test_few_event_windows_get_a_wider_band():
    a, b = SentimentShift(min_count=10), SentimentShift(min_count=10)
    run(a, [0.1] * 20, [400] * 20)
    run(b, [0.1] * 20, [400] * 20)
    small = a.update(sw(20, 0.3, 25))
    large = b.update(sw(20, 0.3, 2500))
    assert small.value == pytest.approx(large.value, abs=0.01)
    assert small.score < large.score
    assert large.anomalous and not small.anomalous


def test_min_delta_guard():
    det = SentimentShift(min_delta=0.05, floor=1e-6)
    run(det, [0.1] * 20, [100_000] * 20)  # a huge topic: tiny moves are significant
    v = det.update(sw(20, 0.13, 100_000))
    assert v.score >= det.threshold
    assert not v.anomalous
    assert det.update(sw(21, 0.17, 100_000)).anomalous


def test_a_lasting_shift_becomes_the_new_normal():
    rng = np.random.default_rng(4)
    det = SentimentShift(alpha=0.1)
    out = run(det, [0.2] * 40 + [-0.1] * 100, [200] * 140, rng)
    fired = alarms(out)
    assert fired[0] == 40
    assert max(fired) < 40 + 40  # absorbed within a few 1/alpha
    assert det.mean == pytest.approx(-0.1, abs=0.05)


def test_one_wild_window_moves_the_baseline_a_bounded_step():
    det = SentimentShift(clip=3.0)
    run(det, [0.1] * 30, [200] * 30)
    mean_before = det.mean
    det.update(sw(30, -0.44, 200))
    assert abs(det.mean - mean_before) < 0.02


def test_redelivered_windows_are_ignored(det):
    run(det, [0.1] * 10, [100] * 10)
    before = det.state()
    assert det.update(sw(9, -0.4, 100)) is None
    assert det.update(sw(3, -0.4, 100)) is None
    assert det.state() == before


def test_works_from_labels_without_sum_of_squares(det):
    rng = np.random.default_rng(5)
    windows = [sw(i, 0.1, 150, rng) for i in range(30)]
    for w in windows:
        det.update(ClosedWindow(w.topic, w.lang, w.start, w.size_s, w.count, w.sentiment_sum, None, w.labels))
    v = det.update(ClosedWindow("AAPL", "en", 30 * SIZE, SIZE, 150, 150 * -0.3, None,
                                {"negative": 80, "neutral": 40, "positive": 30}))
    assert v.anomalous


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        SentimentShift(alpha=0)
    with pytest.raises(ValueError):
        SentimentShift(min_history=1)


def test_state_round_trip_behaves_identically():
    rng = np.random.default_rng(6)
    means = [0.1] * 100 + [-0.2] * 30 + [0.1] * 70
    counts = rng.integers(5, 300, size=200).tolist()
    windows = [sw(i, m, n, rng) for i, (m, n) in enumerate(zip(means, counts))]
    a = SentimentShift(alpha=0.2, name="ss_fast")
    for w in windows[:90]:
        a.update(w)
    b = SentimentShift.from_state(json.loads(json.dumps(a.state())))
    assert b.name == "ss_fast" and b.alpha == 0.2
    out_a = [a.update(w) for w in windows[90:]]
    out_b = [b.update(w) for w in windows[90:]]
    assert out_a == out_b
    assert any(v is not None and v.anomalous for v in out_a)
    assert a.state() == b.state()


def test_cold_state_round_trips(det):
    b = SentimentShift.from_state(json.loads(json.dumps(det.state())))
    means, counts = [0.1] * 8 + [-0.4], [100] * 9
    assert run(b, means, counts) == run(det, means, counts)
