"""The soak's verdict: RSS slope and growth after the warm-up (babelwatch.bench.soak.rss_trend)."""
from __future__ import annotations

import os
import random

import pytest

from babelwatch.bench.soak import MIB, SoakSample, group_pids, proc_status, report, rss_trend


def test_flat_series_after_a_warm_up_ramp_has_no_growth():
    # 100 -> 200 MiB while warming up (first 20 % of the events), then flat at 200 MiB
    pts = [(e, (100 + min(e, 200_000) / 2_000) * MIB) for e in range(0, 1_000_001, 10_000)]
    tr = rss_trend(pts, warmup_fraction=0.2)
    assert tr.points == 81
    assert tr.slope == pytest.approx(0.0, abs=1e-9)
    assert tr.growth_pct == pytest.approx(0.0, abs=1e-9)
    assert tr.start_bytes == tr.end_bytes == pytest.approx(200 * MIB)


def test_linear_leak_is_measured_as_slope_and_growth():
    # 100 bytes per event: +76 MiB over the 800k events after the warm-up
    pts = [(e, 200 * MIB + 100 * e) for e in range(0, 1_000_001, 50_000)]
    tr = rss_trend(pts, warmup_fraction=0.2)
    assert tr.slope == pytest.approx(100.0)
    assert tr.mib_per_100k == pytest.approx(100 * 100_000 / MIB)
    start, end = 200 * MIB + 100 * 200_000, 200 * MIB + 100 * 1_000_000
    assert tr.start_bytes == pytest.approx(start) and tr.end_bytes == pytest.approx(end)
    assert tr.growth_pct == pytest.approx((end - start) / start * 100)
    assert tr.growth_pct > 5


def test_noise_does_not_decide_the_verdict():
    rng = random.Random(3)
    pts = [(e, 300 * MIB + rng.uniform(-3, 3) * MIB) for e in range(0, 1_000_001, 10_000)]
    pts[-1] = (pts[-1][0], 330 * MIB)  # one high last sample: +10 % measured, not fitted
    tr = rss_trend(pts, 0.2)
    assert abs(tr.growth_pct) < 2
    assert tr.last_bytes == 330 * MIB


def test_too_few_points_or_no_spread_gives_none():
    assert rss_trend([], 0.2) is None
    assert rss_trend([(0, 1.0), (10, 2.0)], 0.0) is None
    assert rss_trend([(5, 1.0), (5, 2.0), (5, 3.0)], 0.0) is None


def test_report_flags_growth_over_the_goal():
    flat = [SoakSample(t, e, e, {"worker": 200 * MIB, "notifier": 80 * MIB, "triton": 90 * MIB})
            for t, e in enumerate(range(0, 100_001, 10_000))]
    text, ok = report(flat, 0.2, 100_000, True, 60.0)
    assert ok and "met" in text
    leaky = [SoakSample(s.t, s.produced, s.scored, {**s.rss, "worker": 200 * MIB + 1_000 * s.scored}) for s in flat]
    text, ok = report(leaky, 0.2, 100_000, True, 60.0)
    assert not ok and "NOT met" in text


def test_proc_helpers_read_this_process():
    st = proc_status(os.getpid())
    assert st["VmRSS"] > 0 and st["VmHWM"] >= st["VmRSS"]
    assert proc_status(2**22 + 12345) == {}
    assert os.getpid() in group_pids(os.getpgid(0))
