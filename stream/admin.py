"""Kafka administration: topics created with explicit partitions before a worker or the notifier
joins, and topic ids from the broker's metadata for workers.lifetimes. Clients: stream.clients."""
from __future__ import annotations

import asyncio
import logging
import threading

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from contracts.settings import Settings
from stream import clients
from workers.retry import DependencyUnavailable

log = logging.getLogger("babelwatch.admin")


def ensure_topics(settings: Settings, partitions: dict[str, int]) -> None:
    admin = clients.admin(settings, "babelwatch-setup")
    try:
        existing = set(admin.list_topics())
        wanted = [new_topic(settings, t, n) for t, n in partitions.items() if t not in existing]
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass  # a second worker won the race
            log.info("created topics %s", [t.name for t in wanted])
    finally:
        admin.close()


def new_topic(settings: Settings, name: str, partitions: int) -> NewTopic:
    """A topic as babelwatch creates it: ``topic_replication_factor`` replicas and, when set,
    ``min.insync.replicas`` (producers use acks=all, so a write survives the loss of a broker)."""
    configs = ({"min.insync.replicas": str(settings.topic_min_insync_replicas)}
               if settings.topic_min_insync_replicas else {})
    return NewTopic(name, partitions, settings.topic_replication_factor, topic_configs=configs)


class TopicIds:
    """``await ids(["t1", "t2"]) -> {"t1": "uuid", ...}`` (topics that do not exist are left out)."""

    def __init__(self, settings: Settings, client_id: str = "babelwatch-topic-ids") -> None:
        self.settings = settings
        self.client_id = client_id
        self._admin = None
        self._lock = threading.Lock()  # one admin client, used from worker threads one at a time

    async def __call__(self, topics: list[str]) -> dict[str, str | None]:
        try:
            return await asyncio.to_thread(self._describe, topics)
        except Exception as exc:  # the broker's state, never the records': the batch waits
            raise DependencyUnavailable(f"topic metadata: {type(exc).__name__}: {exc}") from exc

    def _describe(self, topics: list[str]) -> dict[str, str | None]:
        with self._lock:
            try:
                if self._admin is None:
                    self._admin = clients.admin(self.settings, self.client_id, request_timeout_ms=10_000)
                described = self._admin.describe_topics(topics)
            except Exception:
                self._close()
                raise
        return {t["name"]: (str(t["topic_id"]) if t.get("topic_id") else None)
                for t in described if not t.get("error_code")}

    def _close(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            except Exception:
                log.debug("closing the admin client failed", exc_info=True)
            self._admin = None

    def close(self) -> None:
        with self._lock:
            self._close()
