"""Cusum (workers/detectors/cusum.py): two-sided Page CUSUM on standardised window values."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workers.detectors.base import ClosedWindow, Verdict
from workers.detectors.cusum import Cusum

SIZE = 60


def gw(i: int, x: float, n: int = 100) -> ClosedWindow:
    """A window with mean sentiment ``x`` and no per-event spread recorded (no sampling term)."""
    return ClosedWindow(topic="AAPL", lang="*", start=i * SIZE, size_s=SIZE, count=n, sentiment_sum=x * n)


def vw(i: int, count: int) -> ClosedWindow:
    return ClosedWindow(topic="AAPL", lang="*", start=i * SIZE, size_s=SIZE, count=count)


def feed(det, values, make=gw, first: int = 0) -> list[Verdict | None]:
    return [det.update(make(first + i, v)) for i, v in enumerate(values)]


def alarms(out) -> list[int]:
    return [i for i, v in enumerate(out) if v is not None and v.anomalous]


def noise(seed: int, n: int, mean: float = 0.1, sd: float = 0.05) -> list[float]:
    return (mean + sd * np.random.default_rng(seed).standard_normal(n)).tolist()


def test_cold_start_learns_the_reference():
    det = Cusum(warmup=10)
    out = feed(det, noise(0, 10) + [5.0])
    assert out[:10] == [None] * 10
    assert out[10] is not None and out[10].anomalous
    assert out[10].threshold == det.h


def test_catches_a_small_persistent_shift_no_single_window_shows():
    vals = noise(1, 60) + noise(2, 40, mean=0.1 + 1.5 * 0.05)  # +1.5 sigma from window 60 on
    det = Cusum()
    out = feed(det, vals)
    fired = alarms(out)
    assert fired and 60 <= fired[0] <= 80
    assert "shifted up" in out[fired[0]].message
    # a per-window 4-sigma test would have seen nothing in the shifted part
    z = (np.array(vals[60:]) - 0.1) / 0.05
    assert (np.abs(z) < 4).mean() > 0.95


def test_two_sided_catches_a_drop():
    det = Cusum(warmup=24, alpha=0.0)
    out = feed(det, noise(3, 40) + noise(4, 30, mean=0.1 - 3 * 0.05))
    fired = alarms(out)
    assert fired and 40 <= fired[0] <= 46
    assert "shifted down" in out[fired[0]].message and out[fired[0]].value < out[fired[0]].baseline


def test_catches_a_gradual_drift():
    n = 200
    ramp = np.clip((np.arange(n) - 60) / 80, 0, 1) * 0.2  # +4 sigma over 80 windows
    vals = (np.array(noise(5, n)) + ramp).tolist()
    fired = alarms(feed(Cusum(), vals))
    assert fired and 60 < fired[0] < 140


def test_quiet_on_noise():
    out = feed(Cusum(), noise(6, 5000))
    assert len(alarms(out)) <= 1


def test_reset_and_relearn_after_an_alarm():
    det = Cusum(warmup=12, alpha=0.0)
    vals = noise(7, 30) + noise(8, 100, mean=0.5)  # a lasting jump
    out = feed(det, vals)
    fired = alarms(out)
    assert fired == [30]  # once: the new level is learned as the new normal
    assert out[31:43] == [None] * 12  # relearning
    assert det.state()["pos"] < det.h and det.state()["neg"] < det.h


def test_without_relearn_a_lasting_shift_alarms_again():
    det = Cusum(warmup=12, alpha=0.0, relearn=False)
    fired = alarms(feed(det, noise(7, 30) + noise(8, 100, mean=0.5)))
    assert len(fired) > 10  # sums reset to 0, but the old reference keeps them climbing


def test_sentiment_min_count_guard():
    det = Cusum(warmup=5, min_count=20)
    feed(det, [0.1] * 5)
    before = det.state()
    assert det.update(gw(5, -0.9, n=19)) is None
    assert det.state() == {**before, "last": 5}
    assert det.update(gw(6, 0.1, n=20)) is not None


def test_volume_metric_catches_a_lasting_increase():
    rng = np.random.default_rng(9)
    counts = rng.poisson(100, size=60).tolist() + rng.poisson(140, size=30).tolist()
    det = Cusum(metric="volume", warmup=24, alpha=0.0)
    out = feed(det, counts, make=vw)
    fired = alarms(out)
    assert fired and 60 <= fired[0] <= 66
    assert "volume" in out[fired[0]].message


def test_volume_metric_skips_tiny_series():
    det = Cusum(metric="volume", warmup=3, min_count=20)
    assert feed(det, [1, 2, 1, 3, 50], make=vw) == [None] * 5
    assert det.state()["mu"] is None  # nothing learned from windows that small


def test_redelivered_windows_are_ignored():
    det = Cusum(warmup=5)
    feed(det, [0.1] * 10)
    before = det.state()
    assert det.update(gw(9, 9.0)) is None
    assert det.update(gw(2, 9.0)) is None
    assert det.state() == before


def test_sampling_noise_of_small_windows_weakens_their_evidence():
    big, small = Cusum(warmup=10, alpha=0.0, sd_floor=0.01), Cusum(warmup=10, alpha=0.0, sd_floor=0.01)
    spread = {"negative": 30, "neutral": 40, "positive": 30}
    for i in range(10):
        w = gw(i, 0.1 + (0.01 if i % 2 else -0.01))
        big.update(w)
        small.update(w)
    v_big = big.update(ClosedWindow("AAPL", "*", 10 * SIZE, SIZE, 2000, 0.2 * 2000, None,
                                    {k: v * 20 for k, v in spread.items()}))
    v_small = small.update(ClosedWindow("AAPL", "*", 10 * SIZE, SIZE, 25, 0.2 * 25, None,
                                        {"negative": 7, "neutral": 10, "positive": 8}))
    assert v_big.value == pytest.approx(v_small.value)
    assert v_small.score < v_big.score


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError):
        Cusum(metric="likes")
    with pytest.raises(ValueError):
        Cusum(warmup=1)
    with pytest.raises(ValueError):
        Cusum(h=0)


@pytest.mark.parametrize("split", [5, 40, 61])  # mid-warmup, armed, right after the alarm
def test_state_round_trip_behaves_identically(split):
    vals = noise(10, 60) + noise(11, 60, mean=0.2)
    a = Cusum(warmup=24, name="cusum_fast", alpha=0.02)
    feed(a, vals[:split])
    b = Cusum.from_state(json.loads(json.dumps(a.state())))
    assert b.name == "cusum_fast"
    assert feed(a, vals[split:], first=split) == feed(b, vals[split:], first=split)
    assert a.state() == b.state()
