"""Live stream for browsers (Server-Sent Events): an in-process broadcaster.

Publishing never waits: each subscriber has a bounded queue; when a subscriber falls behind, its
OLDEST messages are dropped and the next thing it reads is a ``gap`` event saying how many it
missed (then the newest messages follow), so one slow browser never slows the publisher or the
other subscribers. Subscribers pick a channel (an SSE receiver's channel, or ``*`` for every
channel). The HTTP layer turns a subscription into a response body with :func:`sse_stream`
(``text/event-stream``), e.g. with aiohttp::

    sub = broadcaster.subscribe(channel)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    try:
        async for chunk in sse_stream(sub):
            await resp.write(chunk)
    finally:
        sub.close()
"""
from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator

from workers.alerting.cloudevents import DEFAULT_SOURCE, group_event
from workers.alerting.model import NotificationGroup, SseReceiver
from workers.alerting.sinks.base import Sink

ALL_CHANNELS = "*"
GAP_EVENT = "gap"


@dataclass(frozen=True)
class SseMessage:
    event: str
    data: str
    id: str | None = None

    def encode(self) -> bytes:
        lines = []
        if self.id is not None:
            lines.append(f"id: {self.id}")
        lines.append(f"event: {self.event}")
        lines += [f"data: {line}" for line in self.data.split("\n")]
        return ("\n".join(lines) + "\n\n").encode()


class SseSubscription:
    def __init__(self, broadcaster: "SseBroadcaster", channel: str, maxlen: int) -> None:
        self.broadcaster = broadcaster
        self.channel = channel
        self.maxlen = maxlen
        self._queue: deque[SseMessage] = deque()
        self._ready = asyncio.Event()
        self.dropped = 0  # not yet reported in a gap event
        self.dropped_total = 0
        self.closed = False

    def push(self, msg: SseMessage) -> None:
        """Never blocks: a full queue loses its oldest message."""
        if self.closed:
            return
        if len(self._queue) >= self.maxlen:
            self._queue.popleft()
            self.dropped += 1
            self.dropped_total += 1
        self._queue.append(msg)
        self._ready.set()

    async def get(self, timeout: float | None = None) -> SseMessage | None:
        """Next message (a gap marker first if some were dropped); None on timeout or close."""
        while not self._queue and not self.closed:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        if self.dropped:
            n, self.dropped = self.dropped, 0
            return SseMessage(GAP_EVENT, json.dumps({"dropped": n}))
        if self._queue:
            return self._queue.popleft()
        return None

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._ready.set()
            self.broadcaster._remove(self)


class SseBroadcaster:
    def __init__(self, maxlen: int = 100, max_subscribers: int = 1000) -> None:
        self.maxlen = maxlen
        self.max_subscribers = max_subscribers
        self._subs: set[SseSubscription] = set()
        self.published = 0

    def subscribe(self, channel: str = ALL_CHANNELS) -> SseSubscription:
        if len(self._subs) >= self.max_subscribers:
            raise RuntimeError("too many live-stream subscribers")
        sub = SseSubscription(self, channel, self.maxlen)
        self._subs.add(sub)
        return sub

    def _remove(self, sub: SseSubscription) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, channel: str, event: str, data: str, id_: str | None = None) -> int:
        """Queue for every subscriber of ``channel`` (and of ``*``); returns how many. Never waits."""
        msg = SseMessage(event, data, id_)
        n = 0
        for sub in list(self._subs):
            if sub.channel in (channel, ALL_CHANNELS):
                sub.push(msg)
                n += 1
        self.published += 1
        return n

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        for sub in list(self._subs):
            sub.close()


async def sse_stream(sub: SseSubscription, heartbeat_s: float = 15.0) -> AsyncIterator[bytes]:
    """The subscription as ``text/event-stream`` chunks, with a comment line as heartbeat."""
    yield b"retry: 3000\n\n"
    while not sub.closed:
        msg = await sub.get(timeout=heartbeat_s)
        if msg is None:
            if sub.closed:
                return
            yield b": keepalive\n\n"
        else:
            yield msg.encode()


class SseSink(Sink):
    """Publishes each notification group (as its CloudEvent) on the receiver's channel."""

    def __init__(self, receiver: SseReceiver, broadcaster: SseBroadcaster, source: str = DEFAULT_SOURCE) -> None:
        self.receiver = receiver
        self.name = receiver.name
        self.channel = receiver.channel or receiver.name
        self.broadcaster = broadcaster
        self.source = source

    async def send(self, group: NotificationGroup) -> None:
        event = group_event(group, self.name, self.source)
        self.broadcaster.publish(self.channel, event["type"], json.dumps(event, separators=(",", ":"), default=str),
                                 event["id"])
