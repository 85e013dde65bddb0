"""VolumeSpike.update (workers/detectors/volume_spike.py) on closed windows: the online variant of
the open-window check, with its own rolling history, gap filling, a seasonal baseline and state."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from bw_factories import make_window

from workers.alerts import STAGE_CLOSED, WindowVerdict
from workers.detectors.base import ClosedWindow, Verdict
from workers.detectors.volume_spike import VolumeSpike, robust_z

SIZE = 60


def cw(count: int, i: int, topic: str = "TSLA", lang: str = "*") -> ClosedWindow:
    return ClosedWindow(topic=topic, lang=lang, start=6000 + i * SIZE, size_s=SIZE, count=count)


def feed(det, counts, first: int = 0) -> list[Verdict | None]:
    return [det.update(cw(c, first + i)) for i, c in enumerate(counts)]


@pytest.fixture
def det() -> VolumeSpike:
    return VolumeSpike(threshold=4.0, min_history=3, min_count=20, history=12)


# --- cold start ---------------------------------------------------------------------------------

def test_cold_start_until_min_history(det):
    out = feed(det, [10, 10, 10, 500])
    assert out[:3] == [None, None, None]  # no alert before three closed windows, even for 500
    assert out[3] is not None and out[3].anomalous


def test_min_history_is_configurable():
    det = VolumeSpike(min_history=5, history=5)
    out = feed(det, [1, 1, 1, 1, 1, 100])
    assert out[:5] == [None] * 5
    assert out[5].anomalous


# --- same math as the open-window check ---------------------------------------------------------

@pytest.mark.parametrize("history,count", [((10, 10, 10, 10, 10), 50), ((5, 10, 15, 10, 20), 50),
                                           ((10, 10, 400, 10, 10), 40), ((50, 50, 50), 20), ((0, 0, 0), 25)])
def test_update_scores_like_check(history, count):
    closed = VolumeSpike(min_history=3, history=len(history))
    feed(closed, history)
    v_closed = closed.update(cw(count, len(history)))
    v_open = VolumeSpike(min_history=3).check(make_window(count, history))
    assert v_closed.score == pytest.approx(v_open.score)
    assert v_closed.baseline == v_open.baseline
    assert v_closed.anomalous == v_open.anomalous


def test_robust_z_has_a_poisson_floor():
    median, scale, score = robust_z(50, [10, 10, 10])
    assert (median, scale) == (10, math.sqrt(10))
    assert score == pytest.approx(40 / math.sqrt(10))
    assert robust_z(5, [0, 0, 0])[1] == 1.0


def test_rolling_history_forgets_old_windows():
    det = VolumeSpike(min_history=3, history=4)
    feed(det, [1000, 1000, 1000, 1000, 100, 100, 100, 100])
    v = det.update(cw(100, 8))
    assert v.baseline == 100.0  # the 1000s dropped out of the 4-window history


# --- firing and guards --------------------------------------------------------------------------

def test_spike_fires_and_message(det):
    feed(det, [10] * 6)
    v = det.update(cw(50, 6))
    assert v.anomalous and v.detector == "volume_spike"
    assert v.value == 50.0 and v.baseline == 10.0 and v.threshold == 4.0
    assert "50 events" in v.message and "60s" in v.message


def test_min_count_guard(det):
    feed(det, [1] * 6)
    small = det.update(cw(19, 6))
    assert small.score >= det.threshold and not small.anomalous
    assert det.update(cw(20, 7)).anomalous


def test_drop_does_not_alert(det):
    feed(det, [50] * 6)
    v = det.update(cw(5, 6))
    assert v.score < 0 and not v.anomalous


def test_quiet_on_poisson_noise():
    rng = np.random.default_rng(7)
    det = VolumeSpike(threshold=5.0, min_history=6, history=24)
    out = feed(det, rng.poisson(100, size=3000).tolist())
    assert sum(1 for v in out if v is not None and v.anomalous) == 0


def test_fires_on_injected_spikes_in_noise():
    rng = np.random.default_rng(8)
    counts = rng.poisson(80, size=600)
    spikes = [100, 250, 400, 555]
    for s in spikes:
        counts[s] *= 4
    det = VolumeSpike(threshold=5.0, min_history=6, history=24)
    out = feed(det, counts.tolist())
    fired = [i for i, v in enumerate(out) if v is not None and v.anomalous]
    assert fired == spikes


# --- series bookkeeping -------------------------------------------------------------------------

def test_gaps_are_zero_windows(det):
    feed(det, [10, 10, 10])
    v = det.update(cw(30, 10))  # windows 3..9 were never written: seven zeros
    assert v.baseline == 0.0
    assert v.anomalous


def test_redelivered_and_out_of_order_windows_are_ignored(det):
    feed(det, [10] * 5)
    before = det.state()
    assert det.update(cw(500, 4)) is None  # same window again
    assert det.update(cw(500, 2)) is None  # older window
    assert det.state() == before
    assert det.update(cw(10, 5)) is not None


def test_hopping_series_uses_the_hop_as_step():
    det = VolumeSpike(min_history=3, history=3)
    for i, c in enumerate([10, 10, 10]):
        det.update(ClosedWindow("T", "*", start=i * 60, size_s=300, hop_s=60, count=c))
    v = det.update(ClosedWindow("T", "*", start=3 * 60, size_s=300, hop_s=60, count=10))
    assert v.baseline == 10.0  # consecutive, no gap filled in between


# --- seasonality --------------------------------------------------------------------------------

def _day(peak_at: int = 10, season: int = 24) -> list[int]:
    return [200 if i == peak_at else 50 for i in range(season)]


def test_recurring_peak_is_normal_after_one_season():
    det = VolumeSpike(threshold=4.0, min_history=3, history=6, season=24, seasons=2, season_width=1)
    out = feed(det, _day() * 4)
    peaks = [out[d * 24 + 10] for d in range(4)]
    assert peaks[0].anomalous  # first day: nothing to compare with but the last windows
    assert all(not p.anomalous for p in peaks[1:])
    assert "same time earlier" in peaks[1].message


def test_seasonal_detector_still_fires_on_a_new_burst():
    det = VolumeSpike(threshold=4.0, min_history=3, history=6, season=24, seasons=2, season_width=1)
    days = _day() * 3
    days[2 * 24 + 17] = 200  # a burst at a time that was quiet before
    out = feed(det, days)
    assert out[2 * 24 + 17].anomalous
    assert not out[2 * 24 + 10].anomalous


def test_without_season_the_recurring_peak_alerts_every_day():
    det = VolumeSpike(threshold=4.0, min_history=3, history=6)
    out = feed(det, _day() * 3)
    assert all(out[d * 24 + 10].anomalous for d in range(3))


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        VolumeSpike(min_history=5, history=3)
    with pytest.raises(ValueError):
        VolumeSpike(season=2, season_width=1)


# --- state --------------------------------------------------------------------------------------

def _stream(seed: int, n: int = 200) -> list[int]:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(60, size=n)
    counts[120] = 400
    counts[150:153] = 0
    return counts.tolist()


@pytest.mark.parametrize("season", [0, 24])
def test_state_round_trip_behaves_identically(season):
    counts = _stream(3)
    a = VolumeSpike(min_history=3, history=12, season=season, name="vs_custom")
    feed(a, counts[:100])
    state = json.loads(json.dumps(a.state()))  # JSON-serialisable
    b = VolumeSpike.from_state(state)
    assert b.name == "vs_custom" and b.season == season
    for i, c in enumerate(counts[100:], start=100):
        if i == 160:
            i += 5  # a gap, filled the same way by both
        assert a.update(cw(c, i)) == b.update(cw(c, i))
    assert a.state() == b.state()


def test_state_of_a_cold_detector_round_trips(det):
    b = VolumeSpike.from_state(json.loads(json.dumps(det.state())))
    assert feed(b, [10, 10, 10, 500]) == feed(det, [10, 10, 10, 500])


# --- closed windows from the store, and alerts --------------------------------------------------

def test_closed_window_from_store_records():
    stats = SimpleNamespace(
        topic="T", lang="en", spec=SimpleNamespace(size_s=300, hop_s=60), start=600, count=4,
        labels={"negative": 1, "neutral": 1, "positive": 2}, sentiment_sum=0.8, sentiment_sq=1.6,
    )
    w = ClosedWindow.from_stats(stats)
    assert (w.topic, w.lang, w.start, w.size_s, w.hop_s, w.count) == ("T", "en", 600, 300, 60, 4)
    assert w.sentiment_mean == pytest.approx(0.2)
    assert w.sentiment_event_var == pytest.approx((1.6 - 4 * 0.04) / 3)
    assert w.index == 10
    h = ClosedWindow.from_hash("T", "*", 600, 60, {"count": 3.0, "sentiment_sum": 0.3, "positive": 2.0})
    assert h.count == 3 and h.labels["positive"] == 2 and h.sentiment_sq is None
    empty = ClosedWindow.from_hash("T", "*", 660, 60, {})
    assert empty.count == 0 and empty.sentiment_mean == 0.0 and empty.sentiment_event_var is None


def test_label_based_event_variance():
    w = ClosedWindow("T", "*", 0, 60, count=4, sentiment_sum=0.0,
                     labels={"negative": 2, "neutral": 0, "positive": 2})
    assert w.sentiment_event_var == pytest.approx(1.0 * 4 / 3)  # +-1 each, mean 0


def test_alert_from_a_closed_window(det):
    feed(det, [10] * 5)
    w = cw(80, 5)
    v = det.update(w)
    active = [o for o in WindowVerdict(w.topic, w.lang, w.size_s, w.start, v, STAGE_CLOSED).observations() if o.active]
    assert len(active) == 1
    labels, ann = active[0].labels, active[0].annotations
    assert labels["detector"] == "volume_spike" and labels["topic"] == "TSLA" and labels["window"] == f"{SIZE}s"
    assert labels["stage"] == "closed"
    assert ann["window_start"] == float(w.start)
