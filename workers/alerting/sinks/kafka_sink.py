"""Kafka sink: CloudEvents JSON records through an injected async ``produce(topic, key, value)``.

Kafka-free on purpose: in the Faust worker ``produce`` wraps ``app.producer.send`` (awaiting the
delivery future), in a plain asyncio service an ``aiokafka`` producer's ``send_and_wait``, in tests
a list append.

* :meth:`send` -- one record per notification group (``io.babelwatch.alertgroup.*``), key = group key;
* :meth:`send_alerts` -- one record per alert transition (``io.babelwatch.alert.*``), key =
  fingerprint (so one alert's events stay in order on one partition): what the ``alerts`` topic
  carries.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable

from workers.alerting.cloudevents import DEFAULT_SOURCE, alert_event, dumps, group_event
from workers.alerting.model import AlertInstance, NotificationGroup
from workers.alerting.sinks.base import Sink

Produce = Callable[[str, "bytes | None", bytes], Awaitable[Any]]


class KafkaSink(Sink):
    def __init__(self, topic: str, produce: Produce, *, name: str = "", source: str = DEFAULT_SOURCE) -> None:
        self.topic = topic
        self.produce = produce
        self.name = name or f"kafka:{topic}"
        self.source = source

    async def send(self, group: NotificationGroup) -> None:
        await self.produce(self.topic, group.group_key.encode(), dumps(group_event(group, self.name, self.source)))

    async def send_alerts(self, alerts: Iterable[AlertInstance]) -> None:
        for a in alerts:
            await self.produce(self.topic, a.fingerprint.encode(), dumps(alert_event(a, self.source)))
