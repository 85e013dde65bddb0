"""Fan notification groups out to their receivers, each receiver isolated from the others.

One *lane* per (route id, receiver name): a bounded queue and one task that owns the receiver's
sink (started in that task, stopped when the lane ends). ``submit`` never waits: it puts the group
on each receiver's queue, and when a queue is full (a receiver that is down or slow for long) its
oldest notification is dropped and counted. So a receiver that sleeps, times out or retries only
delays its own lane. A receiver whose config changed gets a new lane; the old one finishes its
backlog and stops. ``retain`` ends lanes of routes/receivers that no longer exist.

Every notification a lane takes ends one way, and only then are the holds it took on the
notification's sources (consumed records, ``workers.alerting.offsets``) released, so the record
can be committed: delivered (then noted in the ``ledger``), skipped because the ``ledger`` says
the lane already had it, or given up and handed to ``on_undelivered`` (the notifier's
failed-deliveries topic) -- a sink's own retries end in ``DeliveryFailed`` after it dead-lettered
the notification itself. A lane cancelled mid-way (shutdown past the drain time, a crash) releases
nothing: its notifications stay uncommitted and are routed again after a restart. A
``mode.Service``: ``stop`` drains for up to ``drain_timeout_s``; ``abandon`` stops without draining.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable

import mode

from workers.alerting.model import NotificationGroup
from workers.alerting.sinks.base import DeliveryFailed, Sink
from workers.retry import until_available

log = logging.getLogger("babelwatch.alerting.dispatcher")

_STOP = object()
SinkFactory = Callable[[object], Sink]
# (lane key, receiver, notification, error): record a notification given up on
OnUndelivered = Callable[[str, object, NotificationGroup, str], Awaitable[None]]
# (receiver, outcome: delivered|failed|skipped|dropped, seconds the lane spent on it or None): metrics
OnOutcome = Callable[[object, str, "float | None"], None]


@dataclass
class LaneStats:
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    skipped: int = 0  # the ledger says this lane had it already


@dataclass
class _Lane:
    key: str
    receiver: object
    queue: asyncio.Queue
    stats: LaneStats = field(default_factory=LaneStats)
    task: asyncio.Task | None = None


def lane_key(route_id: str, receiver_name: str) -> str:
    return f"{route_id}/{receiver_name}"


class Dispatcher(mode.Service):
    def __init__(self, sink_factory: SinkFactory, queue_size: int = 256, send_timeout_s: float | None = None, *,
                 ledger=None, on_undelivered: OnUndelivered | None = None, drain_timeout_s: float = 5.0,
                 on_outcome: OnOutcome | None = None, **service_kwargs) -> None:
        super().__init__(**service_kwargs)
        self.sink_factory = sink_factory
        self.queue_size = queue_size
        self.send_timeout_s = send_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self.ledger = ledger  # a workers.alerting.ledger.DeliveryLedger, or None: no redelivery filter
        self.on_undelivered = on_undelivered
        self.on_outcome = on_outcome
        self.lanes: dict[str, _Lane] = {}
        self._retired: set[asyncio.Task] = set()
        self._giving_up: set[asyncio.Task] = set()

    async def on_stop(self) -> None:
        """Let lanes finish what is queued (up to ``drain_timeout_s``), then cancel them."""
        lanes = list(self.lanes.values())
        for lane in lanes:
            self._close(lane)
        tasks = [t for t in [ln.task for ln in lanes] if t is not None] + list(self._retired) + list(self._giving_up)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self.drain_timeout_s)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self.lanes.clear()
        self._retired.clear()
        self._giving_up.clear()

    async def abandon(self) -> None:
        """Stop without draining: what is queued or in flight stays unreleased (a crash, in tests)."""
        self.drain_timeout_s = 0
        await self.stop()

    def submit(self, groups: NotificationGroup | Iterable[NotificationGroup]) -> None:
        """Queue for every receiver of each group; never waits."""
        if not self.started or self.should_stop:
            raise RuntimeError("dispatcher not running")
        for group in [groups] if isinstance(groups, NotificationGroup) else groups:
            for receiver in group.receivers:
                lane = self._lane(group.route_id, receiver)
                if lane.queue.qsize() >= self.queue_size:
                    try:
                        oldest = lane.queue.get_nowait()
                        lane.queue.task_done()
                        lane.stats.dropped += 1
                        self._report(lane.receiver, "dropped", None)
                        log.warning("receiver %s is behind: oldest notification dropped", lane.key)
                        self._give_up_later(lane, oldest, "receiver queue full: dropped")
                    except asyncio.QueueEmpty:
                        pass
                _hold(group)
                lane.queue.put_nowait(group)
            _release(group)  # the holds the router passed on: the lanes have their own now

    def retain(self, keys: Iterable[str]) -> None:
        """End the lanes whose key is not in ``keys`` (see :func:`lane_key`)."""
        keep = set(keys)
        for key in [k for k in self.lanes if k not in keep]:
            self._close(self.lanes.pop(key))

    def stats(self) -> dict[str, dict[str, int]]:
        return {k: {"queued": ln.queue.qsize(), **vars(ln.stats)} for k, ln in self.lanes.items()}

    async def join(self, timeout_s: float | None = None) -> None:
        """Wait until every queued notification was handled (tests, shutdown)."""
        await asyncio.wait_for(asyncio.gather(*(ln.queue.join() for ln in self.lanes.values())), timeout_s)

    # ------------------------------------------------------------------------------------- lanes

    def _lane(self, route_id: str, receiver) -> _Lane:
        key = lane_key(route_id, receiver.name)
        lane = self.lanes.get(key)
        if lane is not None and lane.receiver != receiver:
            self._close(self.lanes.pop(key))  # config changed: the old lane drains and stops
            lane = None
        if lane is None:
            lane = _Lane(key, receiver, asyncio.Queue())
            lane.task = asyncio.create_task(self._run(lane), name=f"alert-lane:{key}")
            self.lanes[key] = lane
        return lane

    def _close(self, lane: _Lane) -> None:
        lane.queue.put_nowait(_STOP)  # unbounded underneath: the stop marker always fits
        if lane.task is not None:
            self._retired.add(lane.task)
            lane.task.add_done_callback(self._retired.discard)

    async def _run(self, lane: _Lane) -> None:
        sink: Sink | None = None
        start_error = ""  # why the sink could not start: every notification of the lane is given up
        try:
            sink = self.sink_factory(lane.receiver)
            await sink.start()
        except Exception as e:
            log.exception("receiver %s: sink could not start", lane.key)
            start_error = f"{type(e).__name__}: {e}"
        try:
            while True:
                item = await lane.queue.get()
                try:
                    if item is _STOP:
                        return
                    before, t0 = (lane.stats.sent, lane.stats.failed, lane.stats.skipped), time.monotonic()
                    await self._deliver(lane, None if start_error else sink, item, start_error)
                    after = (lane.stats.sent, lane.stats.failed, lane.stats.skipped)
                    for outcome, b, a in zip(("delivered", "failed", "skipped"), before, after):
                        if a > b:
                            self._report(lane.receiver, outcome, time.monotonic() - t0)
                finally:
                    lane.queue.task_done()
        finally:
            if sink is not None:
                try:
                    await sink.stop()
                except Exception:
                    log.exception("receiver %s: sink stop failed", lane.key)

    async def _deliver(self, lane: _Lane, sink: Sink | None, group: NotificationGroup, start_error: str = "") -> None:
        """One notification to one lane, ended as the module doc says; then its holds go."""
        try:
            if sink is None:
                raise RuntimeError(f"sink could not start: {start_error}")
            todo = group
            if self.ledger is not None:
                todo = await until_available(lambda: self.ledger.filter(lane.key, group), f"receiver {lane.key}")
                if todo is None:
                    lane.stats.skipped += 1
                    log.info("receiver %s: notification %s already delivered; skipped", lane.key, group.group_key)
                    return _release(group)
            if self.send_timeout_s is not None:
                await asyncio.wait_for(sink.send(todo), self.send_timeout_s)
            else:
                await sink.send(todo)
            lane.stats.sent += 1
        except asyncio.CancelledError:
            raise
        except DeliveryFailed as e:  # the sink dead-lettered it already
            lane.stats.failed += 1
            log.warning("receiver %s: notification %s failed: %s", lane.key, group.group_key, e)
            return _release(group)
        except Exception as e:
            lane.stats.failed += 1
            log.warning("receiver %s: notification %s failed: %s", lane.key, group.group_key, e)
            return await self._give_up(lane, group, f"{type(e).__name__}: {e}")
        if self.ledger is not None:
            try:
                await until_available(lambda: self.ledger.record(lane.key, todo), f"receiver {lane.key}")
            except Exception:  # noqa: BLE001 - delivered all the same; a redelivery may repeat it
                log.exception("receiver %s: could not record the delivery of %s", lane.key, group.group_key)
        _release(group)

    def _report(self, receiver, outcome: str, seconds: float | None) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(receiver, outcome, seconds)
            except Exception:  # noqa: BLE001 - metrics never fail a delivery
                log.exception("on_outcome failed")

    async def _give_up(self, lane: _Lane, group: NotificationGroup, error: str) -> None:
        if self.on_undelivered is not None:
            try:
                await self.on_undelivered(lane.key, lane.receiver, group, error)
            except Exception:  # noqa: BLE001
                log.exception("receiver %s: could not record the undelivered %s", lane.key, group.group_key)
        _release(group)

    def _give_up_later(self, lane: _Lane, group: NotificationGroup, error: str) -> None:
        task = asyncio.create_task(self._give_up(lane, group, error), name=f"alert-give-up:{lane.key}")
        self._giving_up.add(task)
        task.add_done_callback(self._giving_up.discard)


def _hold(group: NotificationGroup) -> None:
    for src in group.sources:
        src.hold()


def _release(group: NotificationGroup) -> None:
    for src in group.sources:
        src.release()
