"""Alert lifecycle (workers/alerting/lifecycle.py): pending -> firing -> resolved with an injected
clock, ``for`` / ``keep_firing_for`` / ``repeat_interval``, dedup by label set. In-memory state store
(the Redis store runs the same scenarios in tests/workers/alerting/test_alert_state_redis.py)."""
from __future__ import annotations

import asyncio

import pytest

from workers.alerting.lifecycle import AlertLifecycle, Observation, Timing, step
from workers.alerting.model import fingerprint
from workers.alerting.observations import observations_for
from workers.alerting.state_store import MemoryAlertStateStore
from workers.detectors.base import Verdict

LABELS = {"topic": "AAPL", "language": "en", "detector": "volume_spike", "window": "60s", "severity": "warning"}


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def at(self, offset: float) -> float:
        return 1_000_000.0 + offset


def on(labels=LABELS, **ann) -> Observation:
    return Observation(labels, True, ann or {"value": 1})


def off(labels=LABELS) -> Observation:
    return Observation(labels, False)


def make(timing: Timing, clock: Clock | None = None, store=None, **kw) -> AlertLifecycle:
    return AlertLifecycle(store or MemoryAlertStateStore(), timing, clock or Clock(), **kw)


async def run(lc: AlertLifecycle, clock: Clock, offset: float, *obs: Observation):
    clock.t = clock.at(offset)
    return await lc.observe(list(obs))


async def test_pending_until_for_then_firing():
    clock = Clock()
    lc = make(Timing(for_s=60), clock)
    assert await run(lc, clock, 0, on()) == []
    a = await lc.get(LABELS)
    assert a.state == "pending" and a.active_since == clock.at(0) and a.fired_at is None
    assert await run(lc, clock, 59, on()) == []
    notes = await run(lc, clock, 60, on())
    assert [n.state for n in notes] == ["firing"]
    n = notes[0]
    assert n.fired_at == clock.at(60) and n.active_since == clock.at(0) and n.last_notified_at == clock.at(60)
    assert n.fingerprint == fingerprint(LABELS) and n.labels == LABELS
    assert (await lc.get(LABELS)).state == "firing"


async def test_for_zero_fires_on_first_observation():
    clock = Clock()
    lc = make(Timing(for_s=0), clock)
    notes = await run(lc, clock, 0, on(value=42))
    assert [(n.state, n.annotations["value"]) for n in notes] == [("firing", 42)]


async def test_pending_that_clears_never_fires_and_restarts_fresh():
    clock = Clock()
    lc = make(Timing(for_s=60), clock)
    await run(lc, clock, 0, on())
    assert await run(lc, clock, 30, off()) == []
    assert (await lc.get(LABELS)).state == "inactive"
    assert await run(lc, clock, 50, on()) == []  # new pending period starts at 50
    assert await run(lc, clock, 100, on()) == []  # 50 s active: not yet
    notes = await run(lc, clock, 110, on())
    assert [n.state for n in notes] == ["firing"] and notes[0].active_since == clock.at(50)


async def test_keep_firing_for_then_resolved_notification():
    clock = Clock()
    lc = make(Timing(for_s=0, keep_firing_for_s=120), clock)
    await run(lc, clock, 0, on())
    await run(lc, clock, 60, on())  # last active at 60
    assert await run(lc, clock, 100, off()) == []
    assert (await lc.get(LABELS)).state == "firing"
    assert await run(lc, clock, 179, off()) == []
    notes = await run(lc, clock, 180, off())
    assert [n.state for n in notes] == ["resolved"]
    assert notes[0].resolved_at == clock.at(180) and notes[0].fired_at == clock.at(0)
    assert await run(lc, clock, 200, off()) == []  # resolved is told once


async def test_keep_firing_for_absorbs_a_flap():
    clock = Clock()
    lc = make(Timing(for_s=0, keep_firing_for_s=120), clock)
    assert len(await run(lc, clock, 0, on())) == 1
    assert await run(lc, clock, 30, off()) == []
    assert await run(lc, clock, 60, on()) == []  # back within keep_firing_for: same episode, no news
    a = await lc.get(LABELS)
    assert a.state == "firing" and a.fired_at == clock.at(0)


async def test_without_keep_firing_for_resolves_immediately():
    clock = Clock()
    lc = make(Timing(for_s=0, keep_firing_for_s=0), clock)
    await run(lc, clock, 0, on())
    assert [n.state for n in await run(lc, clock, 1, off())] == ["resolved"]


async def test_repeat_interval():
    clock = Clock()
    lc = make(Timing(for_s=0, keep_firing_for_s=600, repeat_interval_s=300), clock)
    assert len(await run(lc, clock, 0, on())) == 1
    assert await run(lc, clock, 100, on()) == []
    assert await run(lc, clock, 299, on()) == []
    again = await run(lc, clock, 300, on())
    assert [n.state for n in again] == ["firing"] and again[0].fired_at == clock.at(0)
    assert again[0].last_notified_at == clock.at(300)
    assert await run(lc, clock, 350, on()) == []
    # still firing through keep_firing_for: repeats continue while the condition is clear
    assert [n.state for n in await run(lc, clock, 600, off())] == ["firing"]


async def test_resolved_then_active_is_a_new_episode():
    clock = Clock()
    lc = make(Timing(for_s=10), clock)
    await run(lc, clock, 0, on())
    await run(lc, clock, 10, on())
    assert [n.state for n in await run(lc, clock, 20, off())] == ["resolved"]
    assert await run(lc, clock, 30, on()) == []
    notes = await run(lc, clock, 40, on())
    assert [n.state for n in notes] == ["firing"]
    assert notes[0].active_since == clock.at(30) and notes[0].fired_at == clock.at(40)
    assert notes[0].resolved_at is None


async def test_dedup_by_label_set():
    clock = Clock()
    lc = make(Timing(for_s=0), clock)
    reordered = dict(reversed(list(LABELS.items())))
    with_empty = {**LABELS, "region": ""}  # an empty label is no label
    notes = await run(lc, clock, 0, on(), on(reordered), on(with_empty))
    assert len(notes) == 1
    other = {**LABELS, "topic": "TSLA"}
    notes = await run(lc, clock, 1, on(), on(other))
    assert [n.labels["topic"] for n in notes] == ["TSLA"]  # AAPL already firing: no repeat yet


async def test_observations_in_one_batch_fold_in_order():
    clock = Clock()
    lc = make(Timing(for_s=0, keep_firing_for_s=0), clock)
    # active then inactive in the same batch at the same instant: fires and resolves -> one
    # notification, the last state
    notes = await run(lc, clock, 0, on(), off())
    assert [n.state for n in notes] == ["resolved"]


async def test_per_label_timing():
    clock = Clock()

    def timing(labels):
        return Timing(for_s=0) if labels["severity"] == "critical" else Timing(for_s=300)

    lc = make(timing, clock)
    crit = {**LABELS, "severity": "critical"}
    notes = await run(lc, clock, 0, on(), on(crit))
    assert [n.labels["severity"] for n in notes] == ["critical"]


async def test_two_lifecycles_on_one_store_notify_once():
    store = MemoryAlertStateStore()
    clock = Clock()
    a, b = make(Timing(for_s=60), clock, store), make(Timing(for_s=60), clock, store)
    await run(a, clock, 0, on())
    assert await run(b, clock, 30, on()) == []  # b sees a's pending state
    assert len(await run(a, clock, 60, on())) == 1
    assert await run(b, clock, 61, on()) == []  # b's cache is stale: the CAS conflict corrects it
    assert b.conflicts >= 1
    assert [n.state for n in await run(b, clock, 62, off())] == ["resolved"]
    assert await run(a, clock, 63, off()) == []


async def test_sweep_treats_unobserved_alerts_as_inactive():
    clock = Clock()
    lc = make(Timing(for_s=0, keep_firing_for_s=60), clock, stale_after_s=120)
    await run(lc, clock, 0, on())
    clock.t = clock.at(100)
    assert await lc.sweep() == []  # observed 100 s ago: not stale
    clock.t = clock.at(130)
    assert [n.state for n in await lc.sweep()] == ["resolved"]  # stale, and 130 s >= keep_firing_for
    assert await lc.sweep() == []


async def test_background_sweep_calls_on_notify():
    clock = Clock()
    got = []
    lc = make(Timing(for_s=0), clock, stale_after_s=10, sweep_interval_s=0.01, on_notify=got.extend)
    await run(lc, clock, 0, on())
    clock.t = clock.at(20)
    await lc.start()
    try:
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.01)
    finally:
        await lc.stop()
    assert [n.state for n in got] == ["resolved"]


def test_step_returns_same_object_when_nothing_changes():
    t = Timing(for_s=0, keep_firing_for_s=100)
    a, note = step(None, on(), 0.0, t)
    assert a.state == "firing" and note
    b, note = step(a, off(), 50.0, t)
    assert b is a and not note
    c, note = step(None, off(), 0.0, t)
    assert c is None and not note


@pytest.mark.parametrize("score,active_sev", [(5.0, "warning"), (9.0, "critical"), (1.0, None)])
def test_observations_for_verdict(score, active_sev):
    v = Verdict(detector="volume_spike", score=score, threshold=4.0, value=50.0, baseline=10.0,
                anomalous=score >= 4.0, message="50 events vs median 10")
    obs = observations_for("AAPL", "en", 60, 6000.0, v, samples=["e1", "e2"])
    assert {o.labels["severity"] for o in obs} == {"warning", "critical"}
    assert all(o.labels["window"] == "60s" and o.labels["topic"] == "AAPL" for o in obs)
    active = [o for o in obs if o.active]
    assert [o.labels["severity"] for o in active] == ([active_sev] if active_sev else [])
    for o in active:
        assert o.annotations["value"] == 50.0 and o.annotations["baseline"] == 10.0
        assert o.annotations["sample_events"] == ["e1", "e2"]
