"""The notifier's work, without Kafka: alert records in (:meth:`AlertDelivery.ingest`), routed by
subscriptions and silences to one lane per receiver, and the offsets whose deliveries have all
ended out (:meth:`AlertDelivery.committable`). stream/notifier.py feeds it from the alerts topic.
Guarantees (at least once, once per receiver, give-up paths, commits): docs/design.md, "Notifier".
"""
from __future__ import annotations

import base64
import json
import logging
import time
from collections import OrderedDict
from typing import Any, Callable, Iterable, Protocol

import mode
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from contracts.settings import Settings
from workers.alerting import cloudevents
from workers.alerting.dispatcher import Dispatcher, lane_key
from workers.alerting.ledger import DeliveryLedger
from workers.alerting.model import AlertInstance, NotificationGroup
from workers.alerting.offsets import OffsetTracker
from workers.alerting.routing import Router
from workers.alerting.sinks.base import FailedDelivery
from workers.alerting.sinks.factory import SinkContext, sink_factory
from workers.alerting.sinks.kafka_sink import Produce
from workers.alerting.sinks.netguard import AddressGuard
from workers.alerting.sinks.sse import SseBroadcaster
from workers.redis_client import async_redis
from workers.alerting.store import AlertConfigStore
from workers.health import Health
from workers.metrics import ProbeCollector
from workers.notifier_metrics import NotifierMetrics

log = logging.getLogger("babelwatch.notifier")

RAW_CHANNEL = "alerts"
ALERT_TYPE_PREFIX = "io.babelwatch.alert."
# a re-sent notification follows its original on the topic within one worker restart or outbox
# drain, far fewer records apart than this; further back the ledger still keeps receivers from
# hearing it twice
RECENT_IDS = 100_000

Partition = tuple[str, int]  # (topic, partition)


class Record(Protocol):
    """What :meth:`AlertDelivery.ingest` reads of a consumed record (a Kafka client's ConsumerRecord fits)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


def decode_alert_event(raw: bytes) -> tuple[dict[str, Any], AlertInstance] | None:
    """(CloudEvent, AlertInstance) from one alerts-topic record, or None if it is not one."""
    try:
        event = json.loads(raw)
        cloudevents.validate(event)
        if not event["type"].startswith(ALERT_TYPE_PREFIX):
            return None
        return event, AlertInstance.model_validate(event["data"])
    except Exception:  # noqa: BLE001 - anything unreadable is skipped, never fatal
        return None


def failed_delivery_record(item: FailedDelivery) -> bytes:
    """What the failed-deliveries topic carries: the delivery, its error and the body that was sent."""
    try:
        body: Any = item.body.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        body, encoding = base64.b64encode(item.body).decode(), "base64"
    return json.dumps({
        "receiver": item.receiver, "receiver_type": item.receiver_type, "url": item.url,
        "group_key": item.group_key, "event_id": item.event_id, "error": item.error,
        "status": item.status, "attempts": item.attempts, "at": item.at,
        "body": body, "body_encoding": encoding, **({"extra": item.extra} if item.extra else {}),
    }, separators=(",", ":"), default=str).encode()


class AlertDelivery(mode.Service):
    """Records in, deliveries out, committable offsets back; ``produce(topic, key, value)`` writes
    Kafka receivers' records and failed deliveries (to ``settings.topic_alerts_failed``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        produce: Produce,
        broadcaster: SseBroadcaster | None = None,
        guard: AddressGuard | None = None,
        clock: Callable[[], float] = time.time,
        refresh_s: float = 2.0,
        tick_s: float = 0.2,
        **service_kwargs,
    ) -> None:
        super().__init__(**service_kwargs)
        self.settings = settings
        self.produce = produce
        self.broadcaster = broadcaster or SseBroadcaster()
        self.guard = guard or AddressGuard.from_settings(settings.alerting_allow_private,
                                                         settings.alerting_allowed_networks)
        self.clock = clock
        self.refresh_s = refresh_s
        self.tick_s = tick_s
        self.redis: aioredis.Redis | None = None
        self.dispatcher: Dispatcher | None = None
        self.router: Router | None = None
        self.offsets = OffsetTracker()
        self._recent_ids: OrderedDict[str, None] = OrderedDict()
        self.consumed = 0
        self.skipped = 0
        self.duplicates = 0
        self.dead_lettered = 0
        # observability (workers/notifier_metrics.py, workers/health.py): read by /metrics, /live, /ready
        self.registry = CollectorRegistry()
        self.metrics = NotifierMetrics(self.registry, self, lag=self.lag)
        self.health = Health(settings.stall_after_s)
        self.registry.register(ProbeCollector(self.live, lambda: self.health.readiness(self.joined)))
        self.joined = False  # the consumer group gave this member its assignment (maybe empty)
        self.last_poll_at: float | None = None  # monotonic time the consumer last returned (records or not)

    # ------------------------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        try:
            await super().start()
        except BaseException:
            await self.stop()  # closes what did start
            raise

    async def on_start(self) -> None:
        s = self.settings
        self.redis = async_redis(s)  # TLS/ACL from Settings
        await self.redis.ping()
        ctx = SinkContext(
            guard=self.guard, produce=self.produce, broadcaster=self.broadcaster,
            dead_letter=self._dead_letter, generator_url=s.alerting_generator_url, clock=self.clock,
        )
        self.dispatcher = Dispatcher(sink_factory(ctx), ledger=DeliveryLedger(self.redis, s.redis_prefix),
                                     on_undelivered=self._undelivered, on_outcome=self.metrics.outcome)
        self.router = Router(
            clock=self.clock, on_groups=self._on_groups, config_store=AlertConfigStore(self.redis, s.redis_prefix),
            refresh_s=self.refresh_s, tick_s=self.tick_s, resolve_unconfirmed=True,
        )
        await self.dispatcher.start()
        await self.router.start()

    async def on_stop(self) -> None:
        """Stop routing, let receivers finish what is queued (bounded), close."""
        if self.router is not None:
            await self.router.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        await self.broadcaster.stop()
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    # ------------------------------------------------------------------------------------- the work

    def ingest(self, records: Iterable[Record]) -> None:
        """Route consumed records; each is tracked until every delivery it gave rise to has ended."""
        assert self.router is not None, "not started"
        alerts: list[AlertInstance] = []
        sources = []
        for rec in records:
            d = decode_alert_event(rec.value or b"")
            pending = self.offsets.add((rec.topic, rec.partition), rec.offset, d[0]["id"] if d else "")
            if d is None:
                self.skipped += 1
                log.warning("notifier: skipped a record that is not an alert CloudEvent (offset %s)", rec.offset)
                pending.release()
            elif self._seen_recently(d[0]["id"]):
                # its first copy (at a lower offset, or this one read again after a rebalance:
                # OffsetTracker) still holds the commit back until delivered
                self.duplicates += 1
                log.info("notifier: dropped a repeated alert event (id %s)", d[0]["id"])
                pending.release()
            else:
                event, alert = d
                self.broadcaster.publish(RAW_CHANNEL, event["type"], rec.value.decode("utf-8", "replace"), event["id"])
                alerts.append(alert)
                sources.append(pending)
        if alerts:
            self.consumed += len(alerts)
            self.router.ingest(alerts, sources=sources)
            for src in sources:
                src.release()  # the consumer's own hold: the router holds what is left to deliver

    def committable(self) -> dict[Partition, int]:
        """Per partition whose commit offset moved: the next offset to read (all before it ended)."""
        return self.offsets.committable()

    def committed(self, offsets: dict[Partition, int]) -> None:
        """``offsets`` (from :meth:`committable`) reached the broker."""
        self.offsets.committed(offsets)

    def revoked(self, partitions: Iterable[Partition]) -> None:
        """Partitions taken away; their records in flight hold back their copies read again."""
        self.offsets.forget(partitions)

    def lag(self) -> dict[Partition, int]:
        """Records behind, per assigned partition (the Kafka side knows; none here)."""
        return {}

    def live(self):
        """Alive while the consume loop keeps returning (it does every fetch wait, records or not)."""
        return self.health.liveness(1, self.last_poll_at)

    def ready(self, redis_ok: bool):
        self.health.dependency("redis", redis_ok)
        return self.health.readiness(self.joined)

    def _seen_recently(self, event_id: str) -> bool:
        if event_id in self._recent_ids:
            return True
        self._recent_ids[event_id] = None
        if len(self._recent_ids) > RECENT_IDS:
            self._recent_ids.popitem(last=False)
        return False

    def _on_groups(self, groups: list[NotificationGroup]) -> None:
        assert self.dispatcher is not None and self.router is not None
        # lanes of receivers that no longer exist (subscription deleted or changed) end here
        self.dispatcher.retain(lane_key(r.id, rcv.name) for r in self.router.routes.values() for rcv in r.receivers)
        self.dispatcher.submit(groups)
        for g in groups:
            log.info("notify %s: %s, %d alert(s) -> %s", g.route_id, g.status, len(g.alerts),
                     ", ".join(r.name for r in g.receivers))

    async def _undelivered(self, lane: str, receiver, group: NotificationGroup, error: str) -> None:
        event = cloudevents.group_event(group, receiver.name)
        await self._dead_letter(FailedDelivery(
            receiver=receiver.name, receiver_type=receiver.type,
            url=getattr(receiver, "url", "") or getattr(receiver, "topic", "") or getattr(receiver, "channel", ""),
            group_key=group.group_key, event_id=event["id"], body=cloudevents.dumps(event), error=error,
            attempts=0, at=self.clock(), extra={"lane": lane},
        ))

    async def _dead_letter(self, item: FailedDelivery) -> None:
        self.dead_lettered += 1
        try:
            await self.produce(self.settings.topic_alerts_failed, item.receiver.encode(), failed_delivery_record(item))
        except Exception:  # noqa: BLE001 - the delivery already failed; do not fail the lane too
            log.exception("notifier: could not record a failed delivery to %s", item.receiver)
