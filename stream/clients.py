"""Every Kafka client the project builds outside Faust's own: thin constructors over aiokafka (the
notifier, the bench) and kafka-python (the synchronous CLI, admin). All connect through
:func:`client_kwargs`, the one place Settings become connection arguments. docs/design.md."""
from __future__ import annotations

from typing import Any, Awaitable, Callable, Mapping

import kafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from kafka.admin import KafkaAdminClient

from contracts.settings import Settings

# Tansu's end offsets and "latest" are unreliable (shared NOTES): readers, and new consumer
# groups, start at the beginning
READER = {"group_id": None, "auto_offset_reset": "earliest", "enable_auto_commit": False}
# commits by hand; these timeouts join a group on Tansu in ~7 s, the defaults took ~32 s (NOTES)
MEMBER = {"auto_offset_reset": "earliest", "enable_auto_commit": False,
          "session_timeout_ms": 10_000, "heartbeat_interval_ms": 1_000, "rebalance_timeout_ms": 10_000}
# 5 ms linger: tiny produce requests cost the broker more CPU than the client saves (shared NOTES)
PRODUCER = {"linger_ms": 5, "acks": "all"}

OnPartitions = Callable[[set[TopicPartition]], Awaitable[None]]


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """How any client reaches the broker. Security settings belong here too: both libraries take
    the same ``security_protocol``/``sasl_*`` names (TLS: aiokafka wants an ``ssl_context``)."""
    return {"bootstrap_servers": settings.bootstrap}


def for_broker(settings: Settings, bootstrap: str) -> Settings:
    """``settings`` pointed at another broker (a local stack's, on its own port)."""
    return settings.model_copy(update={"broker_url": f"kafka://{bootstrap}"})


# ------------------------------------------------------------------------------------------ asyncio

def async_producer(settings: Settings, **kw: Any) -> AIOKafkaProducer:
    """Not started yet."""
    return AIOKafkaProducer(**client_kwargs(settings), **{**PRODUCER, **kw})


def async_consumer(settings: Settings, *topics: str, group: str | None = None, **kw: Any) -> AIOKafkaConsumer:
    """Not started yet. Without ``group``, a reader from the beginning; with it, a group member
    that commits by hand (:data:`MEMBER`)."""
    defaults = READER if group is None else {**MEMBER, "group_id": group}
    return AIOKafkaConsumer(*topics, **client_kwargs(settings), **{**defaults, **kw})


async def start_reader(settings: Settings, partitions: Mapping[str, int], **kw: Any) -> AIOKafkaConsumer:
    """Started, reading every partition of ``{topic: partitions}`` from the beginning, no group."""
    consumer = async_consumer(settings, **kw)
    await consumer.start()
    consumer.assign([TopicPartition(t, p) for t, n in partitions.items() for p in range(n)])
    return consumer


class Rebalance(ConsumerRebalanceListener):
    """A rebalance listener made of two callbacks (either may be None)."""

    def __init__(self, on_assigned: OnPartitions | None = None, on_revoked: OnPartitions | None = None) -> None:
        self._assigned, self._revoked = on_assigned, on_revoked

    async def on_partitions_revoked(self, revoked) -> None:
        if self._revoked is not None:
            await self._revoked(revoked)

    async def on_partitions_assigned(self, assigned) -> None:
        if self._assigned is not None:
            await self._assigned(assigned)


# -------------------------------------------------------------------------------------- synchronous

def producer(settings: Settings, **kw: Any) -> kafka.KafkaProducer:
    return kafka.KafkaProducer(**client_kwargs(settings), **{**PRODUCER, **kw})


def consumer(settings: Settings, *topics: str, **kw: Any) -> kafka.KafkaConsumer:
    """A reader from the beginning, no group, unless ``kw`` says otherwise."""
    return kafka.KafkaConsumer(*topics, **client_kwargs(settings), **{**READER, **kw})


def admin(settings: Settings, client_id: str, **kw: Any) -> KafkaAdminClient:
    # kafka-python's admin: aiokafka's does not speak the Metadata versions that carry topic ids
    return KafkaAdminClient(**client_kwargs(settings), client_id=client_id, **kw)
