"""build_alert (workers/alerts.py): deterministic ids and severity, no Redis."""
from __future__ import annotations

import pytest
from bw_factories import make_window

from babelwatch.schema import Alert
from workers.alerts import build_alert
from workers.detectors.base import Verdict
from workers.detectors.volume_spike import VolumeSpike


def verdict(score: float = 6.0, threshold: float = 4.0, detector: str = "volume_spike") -> Verdict:
    return Verdict(detector=detector, score=score, threshold=threshold, value=50.0, baseline=10.0,
                   anomalous=score >= threshold, message="50 events in 60s window vs median 10")


def test_alert_fields():
    w = make_window(50, (10, 10, 10), topic="TSLA", lang="en", start=6000, size_s=60)
    a = build_alert(w, verdict(6.123456), now=1234.5)
    assert isinstance(a, Alert)
    assert (a.detector, a.topic, a.lang) == ("volume_spike", "TSLA", "en")
    assert a.window_start == 6000.0 and a.window_s == 60
    assert (a.value, a.baseline, a.threshold) == (50.0, 10.0, 4.0)
    assert a.score == 6.123
    assert a.fired_at == 1234.5
    assert "TSLA" in a.message and "[en]" in a.message and "median 10" in a.message
    assert len(a.id) == 16 and int(a.id, 16) >= 0


def test_fired_at_defaults_to_now():
    import time

    before = time.time()
    a = build_alert(make_window(50, (10, 10, 10)), verdict())
    assert before <= a.fired_at <= time.time()


def test_same_window_gives_same_id():
    w1 = make_window(50, (10, 10, 10), start=6000)
    w2 = make_window(80, (10, 12, 10), start=6000, sentiment_sum=3.0)  # the same window, grown later
    a1 = build_alert(w1, verdict(6.0), now=1.0)
    a2 = build_alert(w2, verdict(9.5), now=2.0)
    assert a1.id == a2.id


@pytest.mark.parametrize(
    "other",
    [
        dict(start=6060),
        dict(topic="AAPL"),
        dict(lang="de"),
        dict(size_s=300, start=6000),
    ],
)
def test_different_window_gives_different_id(other):
    base = dict(topic="TSLA", lang="*", start=6000, size_s=60)
    a = build_alert(make_window(50, (10, 10, 10), **base), verdict(), now=1.0)
    b = build_alert(make_window(50, (10, 10, 10), **{**base, **other}), verdict(), now=1.0)
    assert a.id != b.id


def test_different_detector_gives_different_id():
    w = make_window(50, (10, 10, 10))
    assert build_alert(w, verdict(detector="volume_spike")).id != build_alert(w, verdict(detector="other")).id


@pytest.mark.parametrize(
    "score, threshold, severity",
    [(4.0, 4.0, "warning"), (7.99, 4.0, "warning"), (8.0, 4.0, "critical"), (20.0, 4.0, "critical"),
     (5.0, 3.0, "warning"), (6.0, 3.0, "critical")],
)
def test_severity(score, threshold, severity):
    a = build_alert(make_window(50, (10, 10, 10)), verdict(score, threshold))
    assert a.severity == severity


def test_alert_from_a_real_verdict():
    w = make_window(50, (10, 10, 10, 10, 10), topic="BTC", lang="*")
    v = VolumeSpike().check(w)
    a = build_alert(w, v, now=10.0)
    assert a.severity == "critical"  # 12.6 >= 2 * 4
    assert a.score == round(v.score, 3)
    assert a.value == 50.0 and a.baseline == 10.0
    assert Alert.model_validate_json(a.model_dump_json()) == a
