"""The Faust application, configured from Settings.

Broker settings come from measurements against Tansu and Kafka (see shared NOTES): short session
and rebalance timeouts make group joins take seconds instead of ~30 s; a 5 ms linger batches
produce requests; everything stateful lives in Redis, so Faust tables (and their changelogs) are
not used and the in-memory store is enough.
"""
from __future__ import annotations

import faust

from babelwatch.settings import get_settings

settings = get_settings()

app = faust.App(
    settings.app_id,
    broker=settings.broker_url,
    store="memory://",
    value_serializer="raw",
    key_serializer="raw",
    topic_replication_factor=1,
    topic_partitions=settings.topic_partitions,
    table_standby_replicas=0,
    broker_session_timeout=10,
    broker_rebalance_timeout=10,
    broker_heartbeat_interval=1,
    producer_linger=0.005,
    broker_commit_interval=settings.commit_interval_s,
    web_enabled=False,
    autodiscover=False,
)
