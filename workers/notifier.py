"""The notifier: alerts topic -> subscriptions and silences -> receivers (webhook, Alertmanager,
Kafka, browsers over SSE).

Flow::

    alerts topic (CloudEvents, one per alert transition, from the workers)
      -> aiokafka consumer (own consumer group) -> routing.Router (routes = subscriptions, silences,
         group_by / group_wait / group_interval / repeat_interval; config reloaded from Redis)
      -> dispatcher.Dispatcher (one queue + task per receiver: a slow or failing receiver only
         delays itself) -> sinks/* ; deliveries that fail for good -> the failed-deliveries topic

Run ONE notifier per deployment: the router keeps its groups (what was already sent to whom) in
memory. It joins a consumer group, so a second notifier started by mistake (or as a standby) gets
no partition of the single-partition alerts topic and stays idle until the first one is gone.

Delivery is at least once, and once per receiver as far as Redis remembers:

* Offsets are committed by hand (every ``commit_s`` and on stop), never ahead of the work: each
  consumed record is tracked (:mod:`workers.alerting.offsets`) until every delivery it gave rise
  to has ended -- delivered, skipped as already delivered, or given up and written to the
  failed-deliveries topic -- and a record that gave rise to none (silenced, matched by no
  subscription, not news to its groups) ends when its group flushes or at once. A notifier that
  dies (or stops before its lanes drained) leaves the rest uncommitted and the next one routes
  those records again.
* What was delivered is noted in Redis only after the delivery (:mod:`workers.alerting.ledger`):
  per receiver lane, the alert event ids each delivered notification covered, and the alerts it
  was last told fire. When records are routed again, a lane skips a notification whose events
  it already got, and a lane that did not get them (it was failing, hanging or queued behind)
  still does. Repeats of an id within one process (the workers' outbox re-sends with the same
  CloudEvent id) are dropped before routing (a bounded in-memory set) and are done at once.
* A restarted router has forgotten its groups. A resolved alert it cannot vouch for still goes to
  the lanes the ledger says were told it fires, and only to them. Not exact after a restart:
  the timers start over (a group routed again waits ``group_wait`` once more, and
  ``repeat_interval`` counts from then), and a firing alert whose record was already committed
  is known again only from the workers' next reminder, which its subscribers then receive as a
  firing notification once more (like Alertmanager that lost its notification log).
* A receiver lane more than its queue size behind drops its oldest notification; that one goes
  to the failed-deliveries topic too. If even that topic cannot be written, the loss is logged.

Every alert event routed is also published, unrouted, on the SSE channel ``alerts``
(:data:`RAW_CHANNEL`) of the in-process broadcaster, which ``GET /v1/alerts/stream`` serves when
the HTTP API runs in the same process (``babelwatch notify``). It is a live view, not a delivery:
once per process and id, so records routed again after a restart are published again, with
their CloudEvent id as the SSE ``id`` for a client that wants to drop repeats.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections import OrderedDict
from typing import Any, Callable

import redis.asyncio as aioredis

from contracts.settings import Settings
from workers.alerting import cloudevents
from workers.alerting.dispatcher import Dispatcher, lane_key
from workers.alerting.ledger import DeliveryLedger
from workers.alerting.model import AlertInstance, NotificationGroup
from workers.alerting.offsets import OffsetTracker
from workers.alerting.routing import Router
from workers.alerting.sinks.base import FailedDelivery
from workers.alerting.sinks.factory import SinkContext, sink_factory
from workers.alerting.sinks.netguard import AddressGuard
from workers.alerting.sinks.sse import SseBroadcaster
from workers.alerting.store import AlertConfigStore
from workers.alerting.tasks import cancel

log = logging.getLogger("babelwatch.notifier")

RAW_CHANNEL = "alerts"
READY_LINE = "notifier ready"
ALERT_TYPE_PREFIX = "io.babelwatch.alert."
# a re-sent notification follows its original on the topic within one worker restart or outbox
# drain, far fewer records apart than this; further back the ledger still keeps receivers from
# hearing it twice
RECENT_IDS = 100_000


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


class Notifier:
    """A service (``start``/``stop``) in the caller's event loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        broadcaster: SseBroadcaster | None = None,
        guard: AddressGuard | None = None,
        clock: Callable[[], float] = time.time,
        refresh_s: float = 2.0,
        tick_s: float = 0.2,
        commit_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.broadcaster = broadcaster or SseBroadcaster()
        self.guard = guard or AddressGuard(
            allow_private=settings.alerting_allow_private,
            allowed_networks=[n.strip() for n in settings.alerting_allowed_networks.split(",") if n.strip()],
        )
        self.clock = clock
        self.refresh_s = refresh_s
        self.tick_s = tick_s
        self.commit_s = commit_s
        self.group_id = settings.alerting_group or f"{settings.app_id}-notifier"
        self.redis: aioredis.Redis | None = None
        self.producer = None
        self.consumer = None
        self.dispatcher: Dispatcher | None = None
        self.router: Router | None = None
        self._task: asyncio.Task | None = None
        self._commit_task: asyncio.Task | None = None
        self.offsets = OffsetTracker()
        self._recent_ids: OrderedDict[str, None] = OrderedDict()
        self.consumed = 0
        self.skipped = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self.assigned = asyncio.Event()

    # ------------------------------------------------------------------------------------ lifetime

    async def start(self) -> "Notifier":
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

        from stream.admin import ensure_topics  # moves to stream/ with this loop (issue 9)

        s = self.settings
        await asyncio.to_thread(ensure_topics, s.bootstrap, {s.topic_alerts: 1, s.topic_alerts_failed: 1})
        try:
            self.redis = aioredis.from_url(s.redis_url)
            await self.redis.ping()
            self.producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap, linger_ms=5, acks="all")
            await self.producer.start()
            ctx = SinkContext(
                guard=self.guard, produce=self._produce, broadcaster=self.broadcaster,
                dead_letter=self._dead_letter, generator_url=s.alerting_generator_url, clock=self.clock,
            )
            self.dispatcher = Dispatcher(sink_factory(ctx), ledger=DeliveryLedger(self.redis, s.redis_prefix),
                                         on_undelivered=self._undelivered)
            self.router = Router(
                clock=self.clock, on_groups=self._on_groups, config_store=AlertConfigStore(self.redis, s.redis_prefix),
                refresh_s=self.refresh_s, tick_s=self.tick_s, resolve_unconfirmed=True,
            )
            await self.dispatcher.start()
            await self.router.start()

            notifier = self

            class _Listener(ConsumerRebalanceListener):
                async def on_partitions_revoked(self, revoked) -> None:
                    notifier.assigned.clear()
                    await notifier._commit()  # what is done; the rest goes to the partitions' next owner
                    notifier.offsets.forget(revoked)

                async def on_partitions_assigned(self, assigned) -> None:
                    if assigned:
                        notifier.assigned.set()
                        log.info("%s: consuming %s (group %s, %d partition(s))", READY_LINE, s.topic_alerts,
                                 notifier.group_id, len(assigned))

            # Tansu: "latest" and end offsets are unreliable (shared NOTES); a new group reads the
            # topic from the start, where resolved events follow the firing ones they end
            self.consumer = AIOKafkaConsumer(
                bootstrap_servers=s.bootstrap, group_id=self.group_id, auto_offset_reset="earliest",
                enable_auto_commit=False,
                session_timeout_ms=10_000, heartbeat_interval_ms=1_000, rebalance_timeout_ms=10_000,
            )
            self.consumer.subscribe([s.topic_alerts], listener=_Listener())
            await self.consumer.start()
            self._task = asyncio.create_task(self._consume(), name="notifier-consume")
            self._commit_task = asyncio.create_task(self._commit_every(), name="notifier-commit")
        except BaseException:
            await self.stop()
            raise
        log.info("notifier started: alerts topic %s, failed deliveries -> %s", s.topic_alerts, s.topic_alerts_failed)
        return self

    async def stop(self) -> None:
        """Stop consuming, stop routing, let receivers finish what is queued (bounded), commit
        what is done, close."""
        for task in (self._task, self._commit_task):
            await cancel(task)
        self._task = self._commit_task = None
        if self.router is not None:
            await self.router.stop()
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        if self.consumer is not None:
            await self._commit()
            try:
                await self.consumer.stop()
            except Exception:  # noqa: BLE001
                log.exception("notifier: consumer stop failed")
            self.consumer = None
        await self.broadcaster.stop()
        if self.producer is not None:
            try:
                await self.producer.stop()
            except Exception:  # noqa: BLE001
                log.exception("notifier: producer stop failed")
            self.producer = None
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None

    async def wait_assigned(self, timeout: float = 60.0) -> None:
        await asyncio.wait_for(self.assigned.wait(), timeout)

    # ------------------------------------------------------------------------------------- the work

    async def _consume(self) -> None:
        from aiokafka import TopicPartition

        assert self.consumer is not None and self.router is not None
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=500, max_records=500)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a broker hiccup must not end the notifier
                log.exception("notifier: fetch failed; retrying")
                await asyncio.sleep(1.0)
                continue
            alerts: list[AlertInstance] = []
            sources = []
            for records in batches.values():
                for rec in records:
                    d = decode_alert_event(rec.value or b"")
                    pending = self.offsets.add(TopicPartition(rec.topic, rec.partition), rec.offset,
                                               d[0]["id"] if d else "")
                    if d is None:
                        self.skipped += 1
                        log.warning("notifier: skipped a record that is not an alert CloudEvent (offset %s)",
                                    rec.offset)
                        pending.release()
                    elif self._seen_recently(d[0]["id"]):
                        # its first copy (at a lower offset, or this one read again after a rebalance:
                        # OffsetTracker) still holds the commit back until delivered
                        self.duplicates += 1
                        log.info("notifier: dropped a repeated alert event (id %s)", d[0]["id"])
                        pending.release()
                    else:
                        event, alert = d
                        self.broadcaster.publish(RAW_CHANNEL, event["type"], rec.value.decode("utf-8", "replace"),
                                                 event["id"])
                        alerts.append(alert)
                        sources.append(pending)
            if alerts:
                self.consumed += len(alerts)
                self.router.ingest(alerts, sources=sources)
                for src in sources:
                    src.release()  # the consumer's own hold: the router holds what is left to deliver

    def _seen_recently(self, event_id: str) -> bool:
        if event_id in self._recent_ids:
            return True
        self._recent_ids[event_id] = None
        if len(self._recent_ids) > RECENT_IDS:
            self._recent_ids.popitem(last=False)
        return False

    async def _commit(self) -> None:
        """Commit, per partition, past the records whose deliveries have all ended."""
        offsets = self.offsets.committable()
        if not offsets or self.consumer is None:
            return
        try:
            await self.consumer.commit(offsets)
        except Exception as e:  # noqa: BLE001 - e.g. a rebalance; what is done is committed next time
            log.warning("notifier: commit of %s failed: %s", offsets, e)
            return
        self.offsets.committed(offsets)

    async def _commit_every(self) -> None:
        while True:
            await asyncio.sleep(self.commit_s)
            await self._commit()

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

    async def _produce(self, topic: str, key: bytes | None, value: bytes) -> None:
        assert self.producer is not None
        await self.producer.send_and_wait(topic, value, key=key)

    async def _dead_letter(self, item: FailedDelivery) -> None:
        self.dead_lettered += 1
        try:
            await self._produce(self.settings.topic_alerts_failed, item.receiver.encode(), failed_delivery_record(item))
        except Exception:  # noqa: BLE001 - the delivery already failed; do not fail the lane too
            log.exception("notifier: could not record a failed delivery to %s", item.receiver)
