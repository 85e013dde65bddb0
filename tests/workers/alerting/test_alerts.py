"""Verdicts -> lifecycle -> notifications (workers/alerts.py), on the in-memory state store.

The alert's identity is its label set (topic, language, detector, window shape, severity, stage):
one alert per series and detector that stays firing across growing and consecutive anomalous
windows, and resolves on a calm verdict.
"""
from __future__ import annotations

import pytest
from bw_factories import make_window

from workers.alerting.lifecycle import AlertLifecycle, Timing
from workers.alerting.state_store import MemoryAlertStateStore
from workers.alerts import STAGE_CLOSED, STAGE_OPEN, AlertEvaluator, WindowVerdict, observe_in_order
from workers.detectors.base import Verdict
from workers.detectors.volume_spike import VolumeSpike


def verdict(score: float = 6.0, threshold: float = 4.0, detector: str = "volume_spike", value: float = 50.0) -> Verdict:
    return Verdict(detector=detector, score=score, threshold=threshold, value=value, baseline=10.0,
                   anomalous=score >= threshold, message="50 events in 60s window vs median 10")


def wv(v: Verdict, topic="TSLA", lang="*", size_s=60, start=6000, stage=STAGE_OPEN, samples=()) -> WindowVerdict:
    return WindowVerdict(topic, lang, size_s, start, v, stage, tuple(samples))


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def evaluator(keep_firing_for_s: float = 0.0, repeat_s: float = 300.0, clock=None, **kw) -> AlertEvaluator:
    lc = AlertLifecycle(MemoryAlertStateStore(), Timing(0.0, keep_firing_for_s, repeat_s), clock=clock or Clock(), **kw)
    return AlertEvaluator(lc)


async def test_firing_notification_fields():
    ev = evaluator()
    [a] = await ev.evaluate([wv(verdict(6.123456), lang="en", samples=["e1", "e2"])], now=1234.5)
    assert a.state == "firing" and a.fired_at == 1234.5 and a.last_notified_at == 1234.5
    assert a.labels == {"topic": "TSLA", "language": "en", "detector": "volume_spike", "window": "60s",
                        "severity": "warning", "stage": "open"}
    ann = a.annotations
    assert (ann["value"], ann["baseline"], ann["threshold"], ann["score"]) == (50.0, 10.0, 4.0, 6.123)
    assert ann["window_start"] == 6000.0 and "median 10" in ann["summary"]
    assert ann["sample_events"] == ["e1", "e2"]
    assert len(a.fingerprint) == 16 and int(a.fingerprint, 16) >= 0


async def test_a_growing_window_notifies_once():
    ev = evaluator()
    first = await ev.evaluate([wv(verdict(6.0))], now=1.0)
    assert len(first) == 1
    # the same window, grown and judged again by later batches: still the same firing alert
    assert await ev.evaluate([wv(verdict(7.5, value=80.0))], now=2.0) == []
    # so is the next window of the series while it stays anomalous
    assert await ev.evaluate([wv(verdict(6.5), start=6060)], now=3.0) == []


async def test_calm_verdict_resolves_and_a_new_burst_fires_again():
    ev = evaluator()
    [fired] = await ev.evaluate([wv(verdict(6.0))], now=1.0)
    assert await ev.evaluate([wv(verdict(0.5))], now=1.5) != []  # calm: resolved at once (keep_firing_for 0)
    [again] = await ev.evaluate([wv(verdict(6.0), start=6120)], now=2.0)
    assert again.state == "firing" and again.fingerprint == fired.fingerprint and again.fired_at == 2.0


async def test_calm_verdict_on_an_unknown_series_notifies_nothing():
    assert await evaluator().evaluate([wv(verdict(0.1)), wv(verdict(1.0), topic="AAPL")], now=1.0) == []


async def test_keep_firing_for_damps_flaps():
    clock = Clock(0.0)
    ev = evaluator(keep_firing_for_s=60.0, clock=clock)
    assert len(await ev.evaluate([wv(verdict(6.0))])) == 1
    clock.t = 30.0
    assert await ev.evaluate([wv(verdict(0.5), start=6060)]) == []  # within keep_firing_for: still firing
    clock.t = 40.0
    assert await ev.evaluate([wv(verdict(6.0), start=6060)]) == []  # active again: no new episode
    clock.t = 101.0
    [resolved] = await ev.evaluate([wv(verdict(0.5), start=6120)])
    assert resolved.state == "resolved" and resolved.resolved_at == 101.0


@pytest.mark.parametrize(
    "other",
    [dict(topic="AAPL"), dict(lang="de"), dict(size_s=300), dict(stage=STAGE_CLOSED)],
)
async def test_other_series_or_stage_is_another_alert(other):
    ev = evaluator()
    [a] = await ev.evaluate([wv(verdict())], now=1.0)
    [b] = await ev.evaluate([wv(verdict(), **other)], now=1.0)
    assert a.fingerprint != b.fingerprint


async def test_other_detector_is_another_alert():
    ev = evaluator()
    got = await ev.evaluate([wv(verdict(detector="volume_spike")), wv(verdict(detector="cusum"))], now=1.0)
    assert len({a.fingerprint for a in got}) == 2


@pytest.mark.parametrize(
    "score, threshold, severity",
    [(4.0, 4.0, "warning"), (7.99, 4.0, "warning"), (8.0, 4.0, "critical"), (20.0, 4.0, "critical"),
     (5.0, 3.0, "warning"), (6.0, 3.0, "critical")],
)
async def test_severity(score, threshold, severity):
    [a] = await evaluator().evaluate([wv(verdict(score, threshold))], now=1.0)
    assert a.labels["severity"] == severity


async def test_escalation_resolves_the_warning_and_fires_the_critical():
    ev = evaluator()
    [warning] = await ev.evaluate([wv(verdict(6.0))], now=1.0)
    got = {a.labels["severity"]: a for a in await ev.evaluate([wv(verdict(9.0))], now=2.0)}
    assert got["critical"].state == "firing"
    assert got["warning"].state == "resolved" and got["warning"].fingerprint == warning.fingerprint


async def test_repeat_interval_resends_a_firing_alert():
    ev = evaluator(repeat_s=60.0)
    assert len(await ev.evaluate([wv(verdict())], now=0.0)) == 1
    assert await ev.evaluate([wv(verdict())], now=59.0) == []
    [again] = await ev.evaluate([wv(verdict())], now=60.0)
    assert again.state == "firing" and again.fired_at == 0.0 and again.last_notified_at == 60.0


async def test_several_windows_of_a_series_in_one_batch_keep_every_transition():
    """A burst and the calm window after it in one batch (a backlog): firing, then resolved."""
    ev = evaluator()
    got = await ev.evaluate([wv(verdict(6.0), start=6000, stage=STAGE_CLOSED),
                             wv(verdict(0.5), start=6060, stage=STAGE_CLOSED)], now=1.0)
    assert [a.state for a in got] == ["firing", "resolved"]
    assert got[0].fingerprint == got[1].fingerprint


async def test_observe_in_order_is_one_call_without_repeats():
    calls = []

    class Spy:
        async def observe(self, obs, now=None):
            calls.append(len(obs))
            return []

    observations = [o for v in (wv(verdict()), wv(verdict(), topic="AAPL")) for o in v.observations()]
    await observe_in_order(Spy(), observations)  # type: ignore[arg-type]
    assert calls == [4]  # two severities per verdict, no fingerprint twice: one round trip
    calls.clear()
    await observe_in_order(Spy(), observations + observations[:2])  # type: ignore[arg-type]
    assert calls == [4, 2]


async def test_alert_from_a_real_verdict():
    w = make_window(50, (10, 10, 10, 10, 10), topic="BTC", lang="*")
    v = VolumeSpike().check(w)
    [a] = await evaluator().evaluate([WindowVerdict(w.topic, w.lang, w.size_s, w.start, v)], now=10.0)
    assert a.labels["severity"] == "critical"  # 12.6 >= 2 * 4
    assert a.annotations["score"] == round(v.score, 3)
    assert a.annotations["value"] == 50.0 and a.annotations["baseline"] == 10.0
    assert type(a).model_validate_json(a.model_dump_json()).labels == a.labels
