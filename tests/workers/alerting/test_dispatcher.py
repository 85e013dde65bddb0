"""Dispatcher isolation: a receiver that takes 5 s never delays another (which gets its notification
within ~0.5 s), with in-process sinks and with real webhooks to local HTTP receivers; bounded lanes
drop their oldest; the SSE broadcaster never blocks on a slow browser."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from bw_alerting import LABELS, RecordingSink, group, sse_receivers, wait_until
from bw_http import LocalReceiver

from workers.alerting.dispatcher import Dispatcher, lane_key
from workers.alerting.model import AlertInstance, NotificationGroup, Route
from workers.alerting.routing import Router
from workers.alerting.sinks.base import Sink
from workers.alerting.sinks.factory import SinkContext, sink_factory
from workers.alerting.sinks.netguard import AddressGuard
from workers.alerting.sinks.sse import GAP_EVENT, SseBroadcaster, sse_stream


async def test_slow_receiver_does_not_delay_fast_one():
    sinks = {"slow": RecordingSink("slow", delay=5.0), "fast": RecordingSink("fast")}
    d = Dispatcher(lambda r: sinks[r.name], drain_timeout_s=0.1)
    await d.start()
    try:
        receivers = sse_receivers("slow", "fast")
        t0 = time.monotonic()
        d.submit(group(receivers, key="g1"))
        d.submit(group(receivers, key="g2"))
        assert await wait_until(lambda: len(sinks["fast"].got) == 2, timeout=0.5)
        assert sinks["fast"].got[-1][0] - t0 < 0.5
        assert sinks["slow"].got == []  # still sleeping on the first one
    finally:
        t1 = time.monotonic()
        await d.stop()
        assert time.monotonic() - t1 < 1.0  # stop does not wait out the slow receiver
    assert sinks["slow"].stopped and sinks["fast"].stopped


async def test_failing_receiver_keeps_its_lane_and_others_alive():
    sinks = {"bad": RecordingSink("bad", fail=True), "good": RecordingSink("good")}
    d = Dispatcher(lambda r: sinks[r.name])
    await d.start()
    receivers = sse_receivers("bad", "good")
    for i in range(3):
        d.submit(group(receivers, key=f"g{i}"))
    await d.join(timeout_s=2)
    stats = d.stats()
    assert stats[lane_key("r1", "bad")]["failed"] == 3 and stats[lane_key("r1", "good")]["sent"] == 3
    await d.stop()


async def test_full_lane_drops_oldest():
    gate = asyncio.Event()

    class Blocked(RecordingSink):
        async def send(self, group):
            await gate.wait()
            await super().send(group)

    sink = Blocked("b")
    d = Dispatcher(lambda r: sink, queue_size=2)
    await d.start()
    receivers = sse_receivers("b")
    d.submit(group(receivers, key="g0"))
    await asyncio.sleep(0.05)  # g0 is in flight
    for i in range(1, 6):
        d.submit(group(receivers, key=f"g{i}"))
    assert d.stats()[lane_key("r1", "b")]["dropped"] == 3
    gate.set()
    await d.join(timeout_s=2)
    assert [g.group_key for _, g in sink.got] == ["g0", "g4", "g5"]
    await d.stop()


async def test_changed_receiver_config_gets_a_new_lane():
    made = []

    def factory(r):
        made.append(RecordingSink(r.name))
        return made[-1]

    d = Dispatcher(factory)
    await d.start()
    r1 = Route(id="r1", receivers=[{"type": "sse", "name": "x", "channel": "a"}]).receivers
    r2 = Route(id="r1", receivers=[{"type": "sse", "name": "x", "channel": "b"}]).receivers
    d.submit(group(r1))
    d.submit(group(r2))
    await d.join(timeout_s=2)
    await asyncio.sleep(0.05)
    assert len(made) == 2 and made[0].stopped and len(made[1].got) == 1
    d.retain([])
    await asyncio.sleep(0.05)
    assert made[1].stopped and d.lanes == {}
    await d.stop()


@pytest.fixture
async def servers():
    started: list[LocalReceiver] = []

    async def make(script):
        s = await LocalReceiver(script).start()
        started.append(s)
        return s

    yield make
    for s in started:
        await s.stop()


async def test_slow_webhook_does_not_delay_fast_webhook(servers):
    slow, fast = await servers(["hang"]), await servers([200])
    ctx = SinkContext(guard=AddressGuard(allow_private=True))
    d = Dispatcher(sink_factory(ctx), drain_timeout_s=0.1)
    await d.start()
    route = Route(id="r1", receivers=[
        {"type": "webhook", "name": "slow", "url": slow.url(), "timeout_s": 10},
        {"type": "webhook", "name": "fast", "url": fast.url(), "timeout_s": 10},
    ])
    try:
        t0 = time.monotonic()
        d.submit(group(route.receivers))
        await fast.wait_requests(1, timeout=0.5)
        assert len(fast.requests) == 1 and fast.requests[0].at - t0 < 0.5
        await slow.wait_requests(1, timeout=0.5)
        assert len(slow.requests) == 1  # the slow one is being served (hanging) meanwhile
    finally:
        await d.stop()


async def test_router_to_dispatcher_end_to_end():
    """Router timing + dispatcher fan-out, with the real start/stop loops."""
    broadcaster = SseBroadcaster()
    sub = broadcaster.subscribe("live")
    d = Dispatcher(sink_factory(SinkContext(broadcaster=broadcaster)))
    await d.start()
    router = Router([Route(id="r1", group_wait=0.05, receivers=[{"type": "sse", "name": "live"}])],
                    on_groups=d.submit, tick_s=0.02)
    await router.start()
    try:
        now = time.time()
        router.ingest([AlertInstance(labels=LABELS, state="firing", fired_at=now, last_notified_at=now)])
        msg = await sub.get(timeout=2)
        assert msg is not None and msg.event == "io.babelwatch.alertgroup.firing"
        assert json.loads(msg.data)["data"]["alerts"][0]["labels"] == LABELS
    finally:
        await router.stop()
        await d.stop()
        await broadcaster.stop()


# -------------------------------------------------------------------------------------------- SSE


async def test_sse_slow_subscriber_drops_oldest_and_gets_gap_marker():
    b = SseBroadcaster(maxlen=3)
    slow, fast, other = b.subscribe("live"), b.subscribe("*"), b.subscribe("elsewhere")
    got_fast = []

    async def reader():
        while len(got_fast) < 10:
            m = await fast.get(timeout=1)
            got_fast.append(m.data)

    task = asyncio.create_task(reader())
    t0 = time.monotonic()
    for i in range(10):
        assert b.publish("live", "alert", str(i), id_=str(i)) == 2
        await asyncio.sleep(0)  # the fast reader keeps up
    assert time.monotonic() - t0 < 0.1  # publishing never waited for the slow subscriber
    await asyncio.wait_for(task, 1)
    assert got_fast == [str(i) for i in range(10)]
    msgs = [await slow.get(timeout=0.1) for _ in range(4)]
    assert msgs[0].event == GAP_EVENT and json.loads(msgs[0].data) == {"dropped": 7}
    assert [m.data for m in msgs[1:]] == ["7", "8", "9"]
    assert await slow.get(timeout=0.01) is None
    assert other.pending() == 0
    await b.stop()
    assert b.subscribers == 0


async def test_sse_stream_encoding_and_close():
    b = SseBroadcaster()
    sub = b.subscribe()
    b.publish("c", "io.babelwatch.alertgroup.firing", '{"a":1}\n{"b":2}', id_="e1")
    chunks = []
    stream = sse_stream(sub, heartbeat_s=0.05)
    chunks.append(await stream.__anext__())
    chunks.append(await stream.__anext__())
    chunks.append(await stream.__anext__())
    assert chunks[0] == b"retry: 3000\n\n"
    assert chunks[1] == b'id: e1\nevent: io.babelwatch.alertgroup.firing\ndata: {"a":1}\ndata: {"b":2}\n\n'
    assert chunks[2] == b": keepalive\n\n"
    sub.close()
    with pytest.raises(StopAsyncIteration):
        while True:
            await stream.__anext__()
