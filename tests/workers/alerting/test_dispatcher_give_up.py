"""The dispatcher's give-up paths, each ending a notification for its lane so that the records it
came from can be committed: a full lane drops its oldest, a sink raising something other than
DeliveryFailed (a bug), a sink that cannot be built or started. Every one goes to
``on_undelivered`` (the notifier's failed-deliveries topic), releases its hold on the consumed
records (``OffsetTracker``), and leaves the other lanes (and later notifications of the same lane)
alone. In-process sinks and an in-memory tracker: no broker needed."""
from __future__ import annotations

import asyncio
import time

from bw_alerting import LABELS, RecordingSink, sse_receivers, wait_until

from workers.alerting.dispatcher import Dispatcher, lane_key
from workers.alerting.model import AlertInstance, NotificationGroup
from workers.alerting.offsets import OffsetTracker

TP = ("alerts", 0)


def consumed(tracker: OffsetTracker, n: int) -> list:
    """Records 0..n-1 consumed (in offset order, as the consumer registers them)."""
    return [tracker.add(TP, off, f"e{off}") for off in range(n)]


def tracked_group(src, receivers, key: str) -> NotificationGroup:
    """A notification reporting the consumed record ``src``, as the router hands it on: the record
    carries one hold (the router's), which ``submit`` passes on to the lanes."""
    now = time.time()
    a = AlertInstance(labels={**LABELS, "topic": key}, state="firing", active_since=now, last_active_at=now,
                      fired_at=now, last_notified_at=now)
    return NotificationGroup(group_key=key, route_id="r1", receivers=receivers, group_labels={"topic": key},
                             status="firing", alerts=[a], created_at=now, sources=[src])


class GiveUps:
    """``on_undelivered``: (lane, receiver name, group key, the alerts' topics, error) per give-up."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, str, list[str], str]] = []

    async def __call__(self, lane: str, receiver, group: NotificationGroup, error: str) -> None:
        await asyncio.sleep(0)  # a real one awaits the producer
        self.got.append((lane, receiver.name, group.group_key, [a.labels["topic"] for a in group.alerts], error))


async def test_full_lane_gives_up_its_oldest_and_releases_its_hold():
    gate = asyncio.Event()

    class Blocked(RecordingSink):
        async def send(self, group):
            await gate.wait()
            await super().send(group)

    sinks = {"slow": Blocked("slow"), "other": RecordingSink("other")}
    gave_up, tracker = GiveUps(), OffsetTracker()
    d = Dispatcher(lambda r: sinks[r.name], queue_size=2, on_undelivered=gave_up)
    await d.start()
    receivers = sse_receivers("slow", "other")
    try:
        # offsets 0-2 are the ones that get dropped, 3 is in flight on the slow lane, 4-5 queued
        recs = consumed(tracker, 6)
        order = [3, 0, 1, 2, 4, 5]
        d.submit(tracked_group(recs[order[0]], receivers, "g0"))
        assert await wait_until(lambda: d.stats()[lane_key("r1", "slow")]["queued"] == 0)  # g0 in flight
        for i, off in enumerate(order[1:], 1):
            d.submit(tracked_group(recs[off], receivers, f"g{i}"))
            # the other lane keeps up (submits in one go would fill its queue too)
            assert await wait_until(lambda: d.stats()[lane_key("r1", "other")]["queued"] == 0)
        assert d.stats()[lane_key("r1", "slow")]["dropped"] == 3

        assert await wait_until(lambda: len(gave_up.got) == 3 and len(sinks["other"].got) == 6), (gave_up.got, sinks["other"].got, tracker.committable())
        assert gave_up.got == [(lane_key("r1", "slow"), "slow", f"g{i}", [f"g{i}"], "receiver queue full: dropped")
                               for i in (1, 2, 3)]
        # the dropped ones are done; offset 3 (g0) still waits on the slow lane, so nothing past it
        assert tracker.committable() == {TP: 3}
        assert [g.group_key for _, g in sinks["other"].got] == [f"g{i}" for i in range(6)]  # unaffected

        gate.set()
        await d.join(timeout_s=2)
        assert [g.group_key for _, g in sinks["slow"].got] == ["g0", "g4", "g5"]
        assert tracker.committable() == {TP: 6} and tracker.outstanding() == 0
        assert len(gave_up.got) == 3
    finally:
        gate.set()
        await d.stop()


async def test_dropped_notification_is_released_even_if_recording_it_fails():
    gate = asyncio.Event()

    class Blocked(RecordingSink):
        async def send(self, group):
            await gate.wait()

    async def broken_on_undelivered(lane, receiver, group, error):
        raise ConnectionError("failed-deliveries topic unavailable")

    tracker = OffsetTracker()
    d = Dispatcher(lambda r: Blocked(r.name), queue_size=1, on_undelivered=broken_on_undelivered)
    await d.start()
    receivers = sse_receivers("slow")
    try:
        recs = consumed(tracker, 3)
        d.submit(tracked_group(recs[1], receivers, "g0"))
        assert await wait_until(lambda: d.stats()[lane_key("r1", "slow")]["queued"] == 0)
        d.submit(tracked_group(recs[0], receivers, "g1"))
        d.submit(tracked_group(recs[2], receivers, "g2"))  # drops g1 (offset 0)
        assert await wait_until(lambda: tracker.committable() == {TP: 1})  # the loss is logged, not held
    finally:
        gate.set()
        await d.stop()


async def test_sink_raising_an_unexpected_error_gives_up_and_keeps_the_lane():
    class Buggy(RecordingSink):
        async def send(self, group):
            if group.group_key == "g0":
                raise KeyError("routeId")  # a bug, not a DeliveryFailed
            await super().send(group)

    sinks = {"buggy": Buggy("buggy"), "other": RecordingSink("other")}
    gave_up, tracker = GiveUps(), OffsetTracker()
    d = Dispatcher(lambda r: sinks[r.name], on_undelivered=gave_up)
    await d.start()
    receivers = sse_receivers("buggy", "other")
    try:
        for off, src in enumerate(consumed(tracker, 3)):
            d.submit(tracked_group(src, receivers, f"g{off}"))
        await d.join(timeout_s=2)
        assert await wait_until(lambda: len(gave_up.got) == 1)
        assert gave_up.got == [(lane_key("r1", "buggy"), "buggy", "g0", ["g0"], "KeyError: 'routeId'")]
        assert [g.group_key for _, g in sinks["buggy"].got] == ["g1", "g2"]  # the lane kept running
        assert [g.group_key for _, g in sinks["other"].got] == ["g0", "g1", "g2"]
        stats = d.stats()
        assert stats[lane_key("r1", "buggy")]["failed"] == 1 and stats[lane_key("r1", "buggy")]["sent"] == 2
        assert tracker.committable() == {TP: 3}
    finally:
        await d.stop()


async def test_send_timeout_gives_up_and_releases():
    class Hanging(RecordingSink):
        async def send(self, group):
            await asyncio.sleep(30)

    gave_up, tracker = GiveUps(), OffsetTracker()
    d = Dispatcher(lambda r: Hanging(r.name), send_timeout_s=0.1, on_undelivered=gave_up)
    await d.start()
    try:
        d.submit(tracked_group(consumed(tracker, 1)[0], sse_receivers("hang"), "g0"))
        await d.join(timeout_s=2)
        assert [(lane, name, key) for lane, name, key, _, _ in gave_up.got] == [(lane_key("r1", "hang"), "hang", "g0")]
        assert gave_up.got[0][4].startswith("TimeoutError")
        assert tracker.committable() == {TP: 1}
    finally:
        await d.stop()


async def test_sinks_that_cannot_start_give_up_every_notification_and_others_deliver():
    class StartFails(RecordingSink):
        async def start(self):
            raise OSError("cannot open a connection")

    start_fails, other = StartFails("start_fails"), RecordingSink("other")

    def factory(r):
        if r.name == "unbuildable":
            raise ValueError("a Kafka receiver needs SinkContext.produce")
        return {"start_fails": start_fails, "other": other}[r.name]

    gave_up, tracker = GiveUps(), OffsetTracker()
    d = Dispatcher(factory, on_undelivered=gave_up)
    await d.start()
    receivers = sse_receivers("unbuildable", "start_fails", "other")
    try:
        for off, src in enumerate(consumed(tracker, 2)):
            d.submit(tracked_group(src, receivers, f"g{off}"))
        await d.join(timeout_s=2)
        assert await wait_until(lambda: len(gave_up.got) == 4)
        by_lane = {}
        for lane, name, key, topics, error in gave_up.got:
            by_lane.setdefault(name, []).append((key, topics, error))
        assert by_lane["unbuildable"] == [
            (f"g{i}", [f"g{i}"], "RuntimeError: sink could not start: "
                                 "ValueError: a Kafka receiver needs SinkContext.produce") for i in range(2)]
        assert by_lane["start_fails"] == [
            (f"g{i}", [f"g{i}"], "RuntimeError: sink could not start: OSError: cannot open a connection")
            for i in range(2)]
        assert start_fails.got == []  # never handed a notification after its start failed
        assert [g.group_key for _, g in other.got] == ["g0", "g1"]
        assert tracker.committable() == {TP: 2}
    finally:
        await d.stop()
