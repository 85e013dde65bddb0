"""The Faust application, configured from Settings.

Broker settings come from measurements against Tansu and Kafka (see shared NOTES): short session
and rebalance timeouts make group joins take seconds instead of ~30 s; a 5 ms linger batches
produce requests; everything stateful lives in Redis, so Faust tables (and their changelogs) are
not used and the in-memory store is enough.
"""
from __future__ import annotations

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from contracts.settings import get_settings
from stream.clients import faust_credentials

settings = get_settings()


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # Faust hard-codes fetch_max_wait_ms=1500. Kafka answers a fetch as soon as one record
        # arrives, so it rarely matters there, but Tansu holds every fetch for the full wait:
        # 1.5 s of produce->score latency (bench/RESULTS.md). Set before start(), which builds
        # the fetcher from it.
        consumer._fetch_max_wait_ms = settings.consumer_fetch_max_wait_ms
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self):
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class _Transport(faust_aiokafka.Transport):
    Consumer = _Consumer


class BabelwatchApp(faust.App):
    def _new_transport(self):
        return _Transport(self.conf.broker_consumer, self)

    async def _consumer_wait_empty(self, consumer, logger) -> None:
        if self.should_stop:
            # Shutting down: Faust would wait, without a limit, for every batch in flight to be
            # acknowledged, but it has already cancelled the agents, so a batch waiting for Triton
            # or Redis held SIGTERM off until SIGKILL. Its offsets are not committed, so it is
            # delivered again, and every effect of a batch is idempotent (the Redis offset ledger).
            logger.info("shutdown: batches in flight are not awaited (they are delivered again)")
            return
        await super()._consumer_wait_empty(consumer, logger)


app = BabelwatchApp(
    settings.app_id,
    broker=settings.broker_url,
    store="memory://",
    value_serializer="raw",
    key_serializer="raw",
    topic_replication_factor=settings.topic_replication_factor,
    broker_credentials=faust_credentials(settings),  # TLS/SASL from Settings (stream/clients.py)
    topic_partitions=settings.topic_partitions,
    table_standby_replicas=0,
    broker_session_timeout=10,
    broker_rebalance_timeout=10,
    broker_heartbeat_interval=1,
    producer_linger=0.005,
    broker_commit_interval=settings.commit_interval_s,
    web_enabled=False,
    autodiscover=False,
    # Faust's default is "<app id>-data" in the current directory: keep it in the run directory
    datadir=str(settings.run_dir / "{conf.name}-data"),  # babelwatch worker creates run_dir
)
