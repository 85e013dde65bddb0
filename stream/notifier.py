"""The notifier's Kafka side (``babelwatch notify``): :class:`workers.notifier.AlertDelivery` fed by
a consumer group member of the alerts topic, committing by hand what it says is committable, and
producing its records (failed deliveries, Kafka receivers). One per deployment; guarantees:
docs/design.md, "Notifier"."""
from __future__ import annotations

import asyncio
import itertools
import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from contracts.settings import Settings
from stream import clients
from stream.admin import ensure_topics
from workers.alerting.tasks import cancel
from workers.notifier import AlertDelivery

log = logging.getLogger("babelwatch.notifier")

READY_LINE = "notifier ready"  # what babelwatch.localstack waits for in the log


class Notifier(AlertDelivery):
    def __init__(self, settings: Settings, *, commit_s: float = 1.0, **kwargs) -> None:
        super().__init__(settings, produce=self._produce, **kwargs)
        self.commit_s = commit_s
        self.group_id = settings.alerting_group or f"{settings.app_id}-notifier"
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Future | None = None
        self._commit_task: asyncio.Future | None = None
        self.assigned = asyncio.Event()
        self._committed: dict[tuple[str, int], int] = {}  # per partition: the group's committed offset (lag)

    async def on_start(self) -> None:
        s = self.settings
        await asyncio.to_thread(ensure_topics, s, {s.topic_alerts: 1, s.topic_alerts_failed: 1})
        self.producer = clients.async_producer(s)
        await self.producer.start()
        await super().on_start()  # Redis, routing, receiver lanes
        self.consumer = clients.async_consumer(s, group=self.group_id)
        self.consumer.subscribe([s.topic_alerts], listener=clients.Rebalance(self._on_assigned, self._on_revoked))
        await self.consumer.start()
        self._task = self.add_future(self._consume())
        self._commit_task = self.add_future(self._commit_every())
        log.info("notifier started: alerts topic %s, failed deliveries -> %s", s.topic_alerts, s.topic_alerts_failed)

    async def on_stop(self) -> None:
        """Stop consuming, let the deliveries end (AlertDelivery), commit what is done, close."""
        for task in (self._task, self._commit_task):
            await cancel(task)
        self._task = self._commit_task = None
        await super().on_stop()
        if self.consumer is not None:
            await self._commit()
            try:
                await self.consumer.stop()
            except Exception:  # noqa: BLE001
                log.exception("notifier: consumer stop failed")
            self.consumer = None
        if self.producer is not None:
            try:
                await self.producer.stop()
            except Exception:  # noqa: BLE001
                log.exception("notifier: producer stop failed")
            self.producer = None

    async def wait_assigned(self, timeout: float = 60.0) -> None:
        await asyncio.wait_for(self.assigned.wait(), timeout)

    def lag(self) -> dict[tuple[str, int], int]:
        """End offset (the fetch high-water: Tansu's ListOffsets is short, shared NOTES) minus the
        committed offset, per assigned partition whose high-water a fetch has told."""
        out: dict[tuple[str, int], int] = {}
        if self.consumer is None:
            return out
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                out[(tp.topic, tp.partition)] = max(0, high - self._committed.get((tp.topic, tp.partition), 0))
        return out

    async def _on_revoked(self, revoked) -> None:
        self.assigned.clear()
        self.joined = False
        await self._commit()  # what is done; the rest goes to the partitions' next owner
        self.revoked((tp.topic, tp.partition) for tp in revoked)

    async def _on_assigned(self, assigned) -> None:
        for tp in assigned:
            try:
                self._committed[(tp.topic, tp.partition)] = await self.consumer.committed(tp) or 0
            except Exception as e:  # noqa: BLE001 - lag is then counted from 0 until the first commit
                log.debug("notifier: committed offset of %s unknown: %s", tp, e)
        self.joined = True  # a standby member with no partition is joined too
        if assigned:
            self.assigned.set()
            log.info("%s: consuming %s (group %s, %d partition(s))", READY_LINE, self.settings.topic_alerts,
                     self.group_id, len(assigned))

    async def _consume(self) -> None:
        assert self.consumer is not None
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=500)
                self.last_poll_at = time.monotonic()  # liveness: the loop turns
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a broker hiccup must not end the notifier
                log.exception("notifier: fetch failed; retrying")
                self.last_poll_at = time.monotonic()  # a broker down is unreadiness, not a hung loop
                await asyncio.sleep(1.0)
                continue
            self.ingest(itertools.chain.from_iterable(batches.values()))

    async def _commit(self) -> None:
        """Commit, per partition, past the records whose deliveries have all ended."""
        offsets = self.committable()
        if not offsets or self.consumer is None:
            return
        try:
            await self.consumer.commit({TopicPartition(*tp): offset for tp, offset in offsets.items()})
        except Exception as e:  # noqa: BLE001 - e.g. a rebalance; what is done is committed next time
            log.warning("notifier: commit of %s failed: %s", offsets, e)
            return
        self.committed(offsets)
        self._committed.update(offsets)

    async def _commit_every(self) -> None:
        async for _ in self.itertimer(self.commit_s, name="notifier-commit"):
            await self._commit()

    async def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        assert self.producer is not None
        await self.producer.send_and_wait(topic, value, key=key)
