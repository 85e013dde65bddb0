"""Closed windows through the outbox and the stateful detectors, on the real Redis."""
from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis
from bw_factories import make_scored

from contracts.keys import RedisKeys
from contracts.windows import ClosedWindow
from workers.alerting.lifecycle import AlertLifecycle, Timing
from workers.alerting.state_store import RedisAlertStateStore
from workers.alerts import AlertEvaluator
from workers.detection import ClosedWindowDetection
from workers.detectors.registry import DetectorConfig
from workers.outbox import Outbox
from workers.windows import WindowStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def r():
    client = aioredis.from_url("redis://127.0.0.1:6379/0")
    client.test_prefix = f"bwtest-det-{uuid.uuid4().hex[:8]}"
    yield client
    keys = [k async for k in client.scan_iter(f"{client.test_prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_closed_windows_wait_in_the_outbox_until_sent(r):
    store = WindowStore(r, size_s=10, retention=10, prefix=r.test_prefix, allowed_lateness_s=0)
    outbox = Outbox(r, RedisKeys(r.test_prefix).closed_outbox)
    await store.apply_batch([make_scored("T", "en", "neutral", 100.0 + i) for i in range(5)])
    res = await store.apply_batch([make_scored("T", "en", "neutral", 111.0)])  # closes [100, 110)
    assert res.outbox == 2  # en and *

    async def failing_send(items):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        await outbox.drain(failing_send)
    assert await outbox.pending() == 2  # nothing lost when the send fails
    sent: list[bytes] = []

    async def send(items):
        sent.extend(items)

    assert await outbox.drain(send) == 2
    assert await outbox.pending() == 0
    windows = sorted((ClosedWindow.from_json(x) for x in sent), key=lambda w: w.lang)
    assert [(w.lang, w.start, w.count, w.size_s) for w in windows] == [("*", 100, 5, 10), ("en", 100, 5, 10)]


async def test_only_one_worker_drains_at_a_time(r):
    outbox = Outbox(r, RedisKeys(r.test_prefix).closed_outbox)
    await r.rpush(outbox.key, b'{"topic":"T"}')
    await r.set(outbox.lock_key, "someone-else", px=5000)

    async def send(items):
        raise AssertionError("must not send while another worker holds the lock")

    assert await outbox.drain(send) == 0
    assert await outbox.pending() == 1


async def test_detectors_keep_state_in_redis_and_fire_on_a_shift(r):
    config = DetectorConfig.model_validate({"default": {"window_s": 10, "detectors": [
        {"kind": "sentiment_shift", "min_history": 5, "min_count": 5}]}})

    def alerts() -> AlertEvaluator:  # a worker's lifecycle, state shared through Redis
        return AlertEvaluator(AlertLifecycle(RedisAlertStateStore(r, r.test_prefix), Timing(0.0, 0.0, 300.0)))
    windows = []
    for k in range(20):  # calm, slightly noisy sentiment around +0.3 ...
        windows.append(dict(topic="T", lang="*", start=1000 + 10 * k, size_s=10, count=50,
                            sentiment_sum=50 * (0.3 + 0.02 * ((-1) ** k)), sentiment_sq=50 * 0.2))
    shifted = dict(topic="T", lang="*", start=1200, size_s=10, count=50, sentiment_sum=50 * -0.6, sentiment_sq=50 * 0.5)

    import orjson

    def cw(d):
        return ClosedWindow.from_json(orjson.dumps(d))

    # two detection objects = two workers one after the other: state must carry over via Redis
    first = ClosedWindowDetection(r, config, alerts(), r.test_prefix)
    assert await first.process([cw(d) for d in windows[:10]], now=1.0) == []
    second = ClosedWindowDetection(r, config, alerts(), r.test_prefix)
    assert await second.process([cw(d) for d in reversed(windows[10:])], now=2.0) == []  # order restored
    fired = await second.process([cw(shifted)], now=3.0)
    assert [(a.state, a.labels["detector"], a.labels["topic"], a.labels["stage"], a.annotations["window_start"])
            for a in fired] == [("firing", "sentiment_shift", "T", "closed", 1200.0)]
    # the same window again (an outbox redelivery) changes nothing and fires nothing
    assert await second.process([cw(shifted)], now=4.0) == []
    # windows of a shape the profile does not use are ignored
    assert await second.process([cw({**shifted, "size_s": 60, "start": 1260})], now=5.0) == []
    # a calm window after it resolves the alert (another worker's lifecycle: the state is in Redis)
    calm = dict(topic="T", lang="*", start=1210, size_s=10, count=50, sentiment_sum=50 * 0.3, sentiment_sq=50 * 0.2)
    resolved = await ClosedWindowDetection(r, config, alerts(), r.test_prefix).process([cw(calm)], now=6.0)
    assert [(a.state, a.fingerprint) for a in resolved] == [("resolved", fired[0].fingerprint)]


async def test_a_crash_between_lifecycle_and_state_save_notifies_exactly_once(r):
    """Killed after the lifecycle committed (notification queued) but before the detector states
    were saved: the redelivered window is judged again and notifies nothing new."""
    import orjson

    config = DetectorConfig.model_validate({"default": {"window_s": 10, "detectors": [
        {"kind": "sentiment_shift", "min_history": 5, "min_count": 5}]}})

    def alerts() -> AlertEvaluator:
        return AlertEvaluator(AlertLifecycle(RedisAlertStateStore(r, r.test_prefix), Timing(0.0, 0.0, 300.0)))

    def cw(start, mean):
        return ClosedWindow.from_json(orjson.dumps(dict(topic="T", lang="*", start=start, size_s=10, count=50,
                                                         sentiment_sum=50 * mean, sentiment_sq=50 * 0.2)))

    calm = [cw(1000 + 10 * k, 0.3 + 0.02 * ((-1) ** k)) for k in range(12)]
    assert await ClosedWindowDetection(r, config, alerts(), r.test_prefix).process(calm, now=1.0) == []

    class CrashesBeforeSaving(ClosedWindowDetection):
        async def save_states(self, states):
            raise ConnectionError("worker killed")

    shifted = cw(1120, -0.6)
    with pytest.raises(ConnectionError):
        await CrashesBeforeSaving(r, config, alerts(), r.test_prefix).process([shifted], now=2.0)
    outbox = Outbox(r, RedisKeys(r.test_prefix).alerts_outbox)
    assert await outbox.pending() == 1  # the firing notification is safe in the outbox

    # redelivery to a fresh worker: same verdict from the unsaved state, no second notification
    assert await ClosedWindowDetection(r, config, alerts(), r.test_prefix).process([shifted], now=3.0) == []
    sent: list[bytes] = []

    async def send(items):
        sent.extend(items)

    await outbox.drain(send)
    events = [orjson.loads(x) for x in sent]
    assert [(e["type"], e["data"]["labels"]["detector"]) for e in events] == [
        ("io.babelwatch.alert.firing", "sentiment_shift")]
    # and the state is saved now: the same window once more is recognised as seen
    assert await ClosedWindowDetection(r, config, alerts(), r.test_prefix).process([shifted], now=4.0) == []
