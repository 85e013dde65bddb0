"""The notifier's Prometheus metrics: records consumed and skipped, notifications per receiver type and
outcome with their delivery time, failed deliveries, receiver lane depths and the alerts topic's lag.
Counts the notifier keeps itself are read when scraped (:class:`NotifierCollector`); outcomes come
from the dispatcher's ``on_outcome`` hook (:meth:`NotifierMetrics.outcome`). Labels: receiver type
(kafka, webhook, alertmanager, sse) and outcome only, never a route id or URL. Kafka-free.
docs/design.md "Observability"."""
from __future__ import annotations

from typing import Any, Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from workers.metrics import LATENCY_BUCKETS, BoundedLabel

OUTCOMES = ("delivered", "failed", "skipped", "dropped")
RECEIVER_TYPES = ("webhook", "alertmanager", "kafka", "sse")  # workers.alerting.model.Receiver


class NotifierMetrics:
    """``delivery``: a workers.notifier.AlertDelivery (read at scrape); ``lag``: {(topic, partition): n}."""

    def __init__(self, registry: CollectorRegistry, delivery: Any,
                 lag: Callable[[], Mapping[tuple[str, int], int]] | None = None) -> None:
        self.delivery = delivery
        self.lag = lag
        self.type = BoundedLabel(16)
        self.notifications = Counter("babelwatch_notifications_total", "notifications ended, per receiver type and "
                                     "outcome (delivered, failed, skipped: already delivered, dropped: lane full)",
                                     ["receiver_type", "outcome"], registry=registry)
        self.delivery_seconds = Histogram("babelwatch_notification_delivery_seconds", "time from a lane taking a "
                                          "notification to its end (retries included), per receiver type",
                                          ["receiver_type"], buckets=LATENCY_BUCKETS, registry=registry)
        for t in RECEIVER_TYPES:  # known label values start at 0 (rates see the first failure)
            self.type(t)
            for outcome in OUTCOMES:
                self.notifications.labels(t, outcome)
        registry.register(NotifierCollector(self))

    def outcome(self, receiver: Any, outcome: str, seconds: float | None = None) -> None:
        """The dispatcher's hook: one notification to one receiver ended ``outcome``."""
        t = self.type(getattr(receiver, "type", None))
        self.notifications.labels(t, outcome if outcome in OUTCOMES else "failed").inc()
        if seconds is not None and outcome != "dropped":
            self.delivery_seconds.labels(t).observe(seconds)


class NotifierCollector:
    def __init__(self, m: NotifierMetrics) -> None:
        self.m = m

    def describe(self):
        return list(self._families(read=False))

    def collect(self):
        return self._families(read=True)

    def _families(self, read: bool):
        d = self.m.delivery
        consumed = CounterMetricFamily("babelwatch_notifier_records_consumed", "alert events consumed and routed")
        skipped = CounterMetricFamily("babelwatch_notifier_records_skipped", "records not routed: invalid (not an "
                                      "alert CloudEvent) or duplicate (a redelivered id)", labels=["reason"])
        failed = CounterMetricFamily("babelwatch_notifier_failed_deliveries", "deliveries given up and written to "
                                     "the failed-deliveries topic")
        depth = GaugeMetricFamily("babelwatch_notifier_lane_depth", "notifications queued, per receiver type",
                                  labels=["receiver_type"])
        lanes = GaugeMetricFamily("babelwatch_notifier_lanes", "receiver lanes, per receiver type",
                                  labels=["receiver_type"])
        lag = GaugeMetricFamily("babelwatch_consumer_lag_records", "end offset minus committed offset, per "
                                "assigned partition (fetch high-waters)", labels=["topic", "partition"])
        if read:
            consumed.add_metric([], d.consumed)
            skipped.add_metric(["invalid"], d.skipped)
            skipped.add_metric(["duplicate"], d.duplicates)
            failed.add_metric([], d.dead_lettered)
            per_type: dict[str, list[int]] = {}
            dispatcher = getattr(d, "dispatcher", None)
            for lane in list(getattr(dispatcher, "lanes", {}).values()):
                t = self.m.type(getattr(lane.receiver, "type", None))
                n = per_type.setdefault(t, [0, 0])
                n[0] += lane.queue.qsize()
                n[1] += 1
            for t, (queued, count) in sorted(per_type.items()):
                depth.add_metric([t], queued)
                lanes.add_metric([t], count)
            if self.m.lag is not None:
                try:
                    for (topic, partition), n in sorted(self.m.lag().items()):
                        lag.add_metric([str(topic), str(partition)], max(0, int(n)))
                except Exception:  # noqa: BLE001 - a scrape must not fail for one figure
                    pass
        yield from (consumed, skipped, failed, depth, lanes, lag)
