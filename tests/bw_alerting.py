"""Shared helpers for dispatcher and notifier tests: a recording sink, SSE receivers, a poll-until."""
from __future__ import annotations

import asyncio
import time

from workers.alerting.model import AlertInstance, NotificationGroup, Route
from workers.alerting.sinks.base import Sink

LABELS = {"topic": "AAPL", "language": "en", "detector": "volume_spike", "window": "60s", "severity": "warning"}


def group(receivers, key="r1:g", route_id="r1") -> NotificationGroup:
    now = time.time()
    a = AlertInstance(labels=LABELS, state="firing", active_since=now, last_active_at=now, fired_at=now,
                      last_notified_at=now)
    return NotificationGroup(group_key=key, route_id=route_id, receivers=receivers, group_labels={},
                             status="firing", alerts=[a], created_at=now)


def sse_receivers(*names):
    return Route(id="r1", receivers=[{"type": "sse", "name": n} for n in names]).receivers


class RecordingSink(Sink):
    def __init__(self, name: str, delay: float = 0.0, fail: bool = False) -> None:
        self.name, self.delay, self.fail = name, delay, fail
        self.got: list[tuple[float, NotificationGroup]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, group: NotificationGroup) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("receiver down")
        self.got.append((time.monotonic(), group))


async def wait_until(cond, timeout=2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True
