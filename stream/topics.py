"""The Kafka topics babelwatch reads and writes."""
from __future__ import annotations

from stream.app import app, settings

events = app.topic(settings.topic_events, partitions=settings.topic_partitions)
scored = app.topic(settings.topic_scored, partitions=settings.topic_partitions)
alerts = app.topic(settings.topic_alerts, partitions=1)
deadletter = app.topic(settings.topic_deadletter, partitions=1)
late = app.topic(settings.topic_late, partitions=1)
# internal: windows the watermark closed, keyed by topic so one consumer owns a topic's detectors
closed_windows = app.topic(settings.topic_closed_windows, partitions=settings.topic_partitions)


def topic_partitions() -> dict[str, int]:
    """Every topic with its partition count, for pre-creating them on a broker."""
    return {
        settings.topic_events: settings.topic_partitions,
        settings.topic_scored: settings.topic_partitions,
        settings.topic_alerts: 1,
        settings.topic_deadletter: 1,
        settings.topic_late: 1,
        settings.topic_closed_windows: settings.topic_partitions,
        settings.topic_alerts_failed: 1,  # written by the notifier (deliveries that failed for good)
    }
