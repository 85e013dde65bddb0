"""VolumeSpike (workers/detectors/volume_spike.py) on hand-built WindowState objects."""
from __future__ import annotations

import math

import pytest
from bw_factories import make_window

from workers.detectors.base import Verdict
from workers.detectors.volume_spike import VolumeSpike


@pytest.fixture
def det() -> VolumeSpike:
    return VolumeSpike(threshold=4.0, min_history=3, min_count=20)


# --- cold start ---------------------------------------------------------------------------------

@pytest.mark.parametrize("history", [(), (None,), (None, None, None, None, None)])
def test_no_history_no_verdict(det, history):
    assert det.check(make_window(500, history)) is None


def test_fewer_than_min_history_is_no_verdict(det):
    assert det.check(make_window(500, (None, None, None, 5, 5))) is None
    assert det.check(make_window(500, (5, 5))) is None


def test_leading_none_are_trimmed(det):
    # counted as zeros, three leading gaps would pull the median of six windows down to 5
    v = det.check(make_window(50, (None, None, None, 10, 10, 10)))
    assert isinstance(v, Verdict)
    assert v.baseline == 10.0
    assert v.score == pytest.approx(40 / math.sqrt(10))
    # exactly min_history real windows after the gaps is enough
    assert det.check(make_window(50, (None, None, 7, 7, 7))).baseline == 7.0


def test_gaps_after_the_first_window_count_as_zero(det):
    # counts become [10, 0, 0, 0]: median 0, so a window of 30 is a spike
    v = det.check(make_window(30, (None, 10, None, None, None)))
    assert v is not None
    assert v.baseline == 0.0
    assert v.anomalous


def test_min_history_is_configurable():
    det = VolumeSpike(min_history=5)
    assert det.check(make_window(100, (None, 1, 1, 1, 1))) is None
    assert det.check(make_window(100, (1, 1, 1, 1, 1))) is not None


# --- firing -------------------------------------------------------------------------------------

def test_flat_history_with_spike_fires(det):
    v = det.check(make_window(50, (10, 10, 10, 10, 10)))
    assert v.anomalous
    assert v.detector == "volume_spike"
    assert v.value == 50.0
    assert v.baseline == 10.0
    assert v.threshold == 4.0
    # MAD is 0: the Poisson floor sqrt(10) is the scale
    assert v.score == pytest.approx(40 / math.sqrt(10))
    assert v.score > 0
    assert "50 events" in v.message and "60s" in v.message


def test_modest_increase_does_not_fire(det):
    v = det.check(make_window(120, (100, 100, 100, 100, 100)))
    assert v is not None
    assert not v.anomalous
    assert v.score == pytest.approx(2.0)  # (120 - 100) / sqrt(100)
    assert 0 < v.score < det.threshold


def test_normal_noise_does_not_fire(det):
    v = det.check(make_window(112, (95, 104, 99, 110, 101)))
    assert v is not None and not v.anomalous


def test_min_count_guard(det):
    small = det.check(make_window(19, (1, 1, 1, 1, 1)))
    assert small is not None
    assert small.score >= det.threshold  # statistically a spike ...
    assert not small.anomalous  # ... but too small to alert on
    big_enough = det.check(make_window(20, (1, 1, 1, 1, 1)))
    assert big_enough.anomalous


def test_score_exactly_at_threshold_fires(det):
    v = det.check(make_window(32, (16, 16, 16, 16, 16)))  # (32 - 16) / sqrt(16) = 4.0
    assert v.score == pytest.approx(4.0)
    assert v.anomalous


def test_score_just_below_threshold_does_not_fire(det):
    v = det.check(make_window(31, (16, 16, 16, 16, 16)))  # 3.75
    assert v.score == pytest.approx(3.75)
    assert not v.anomalous


def test_past_burst_does_not_inflate_the_baseline(det):
    history = (10, 10, 400, 10, 10)
    v = det.check(make_window(40, history))
    assert v.baseline == 10.0
    assert v.score == pytest.approx(30 / math.sqrt(10))
    assert v.anomalous
    # a mean/stdev baseline would have hidden this spike
    mean = sum(history) / len(history)
    std = math.sqrt(sum((c - mean) ** 2 for c in history) / len(history))
    assert (40 - mean) / std < det.threshold


def test_mad_scale_is_used_when_larger_than_the_poisson_floor(det):
    v = det.check(make_window(50, (5, 10, 15, 10, 20)))  # median 10, MAD 5
    assert v.baseline == 10.0
    assert v.score == pytest.approx((50 - 10) / (1.4826 * 5))
    assert v.anomalous


@pytest.mark.parametrize("history", [(0, 0, 0, 0, 0), (None, None, 0, 0, 0), (3, 3, 3)])
def test_zero_mad_does_not_divide_by_zero(det, history):
    v = det.check(make_window(25, history))
    assert v is not None
    assert math.isfinite(v.score)
    assert v.anomalous


def test_zero_history_scale_floor_is_one(det):
    v = det.check(make_window(25, (0, 0, 0)))
    assert v.score == pytest.approx(25.0)
    assert v.baseline == 0.0


def test_drop_gives_negative_score_and_no_alert(det):
    v = det.check(make_window(20, (50, 50, 50, 50, 50)))
    assert v.score < 0
    assert v.score == pytest.approx((20 - 50) / math.sqrt(50))
    assert not v.anomalous
    assert v.value == 20.0 and v.baseline == 50.0


def test_empty_current_window_after_history(det):
    v = det.check(make_window(0, (10, 10, 10)))
    assert v.score < 0 and not v.anomalous


def test_custom_threshold():
    v = VolumeSpike(threshold=10.0, min_count=1).check(make_window(50, (10, 10, 10, 10, 10)))
    assert v.threshold == 10.0
    assert v.score == pytest.approx(12.649, abs=1e-3)
    assert v.anomalous
    v = VolumeSpike(threshold=15.0, min_count=1).check(make_window(50, (10, 10, 10, 10, 10)))
    assert not v.anomalous


def test_even_history_uses_the_middle_median():
    v = VolumeSpike(min_history=2, min_count=1).check(make_window(40, (10, 20)))
    assert v.baseline == 15.0


def test_check_does_not_mutate_the_window(det):
    w = make_window(50, (None, 10, None, 10, 10))
    det.check(w)
    assert w.history == (None, 10, None, 10, 10)
