"""Every Kafka client the project builds outside Faust's own: thin constructors over aiokafka (the
notifier, the bench) and kafka-python (the synchronous CLI, admin). All connect through
:func:`client_kwargs`, the one place Settings become connection arguments. docs/design.md."""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Awaitable, Callable, Literal, Mapping

import faust
import kafka
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.helpers import create_ssl_context
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

Library = Literal["aiokafka", "kafka-python"]
OnPartitions = Callable[[set[TopicPartition]], Awaitable[None]]


def client_kwargs(settings: Settings, library: Library = "aiokafka") -> dict[str, Any]:
    """How any client reaches the broker, security included (``kafka_*`` settings). Both libraries
    take the same ``security_protocol``/``sasl_*`` names; for TLS aiokafka wants an ``ssl_context``,
    kafka-python its own ``ssl_cafile``/``ssl_certfile``/``ssl_keyfile``/``ssl_check_hostname``.
    The SASL password is read (from its file, if set) at each call: a rotated Secret is used by the
    next client. Plaintext adds nothing, so local runs look as before."""
    kw: dict[str, Any] = {"bootstrap_servers": settings.bootstrap}
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return kw
    kw["security_protocol"] = protocol
    if protocol.startswith("SASL_"):
        kw.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_sasl_username,
                  sasl_plain_password=settings.kafka_password())
    if protocol.endswith("SSL"):
        if library == "aiokafka":
            kw["ssl_context"] = ssl_context(settings)
        else:
            kw.update(ssl_cafile=_path(settings.kafka_ssl_cafile), ssl_certfile=_path(settings.kafka_ssl_certfile),
                      ssl_keyfile=_path(settings.kafka_ssl_keyfile),
                      ssl_check_hostname=settings.kafka_ssl_check_hostname)
    return kw


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of ``kafka_ssl_*`` (None without TLS): the CA file or the system CAs, the
    client certificate for mTLS, certificates always verified, host names unless switched off."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    ctx = create_ssl_context(cafile=_path(settings.kafka_ssl_cafile), certfile=_path(settings.kafka_ssl_certfile),
                             keyfile=_path(settings.kafka_ssl_keyfile))
    ctx.check_hostname = settings.kafka_ssl_check_hostname
    return ctx


def faust_credentials(settings: Settings) -> faust.auth.Credentials | None:
    """The same security for the Faust app (its ``broker_credentials``); None on plaintext."""
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(username=settings.kafka_sasl_username, password=settings.kafka_password(),
                                     mechanism=settings.kafka_sasl_mechanism, ssl_context=ssl_context(settings))
    if protocol == "SSL":
        return faust.SSLCredentials(ssl_context(settings))
    return None


def _path(p: Path | None) -> str | None:
    return str(p) if p is not None else None


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
    return kafka.KafkaProducer(**client_kwargs(settings, "kafka-python"), **{**PRODUCER, **kw})


def consumer(settings: Settings, *topics: str, **kw: Any) -> kafka.KafkaConsumer:
    """A reader from the beginning, no group, unless ``kw`` says otherwise."""
    return kafka.KafkaConsumer(*topics, **client_kwargs(settings, "kafka-python"), **{**READER, **kw})


def admin(settings: Settings, client_id: str, **kw: Any) -> KafkaAdminClient:
    # kafka-python's admin: aiokafka's does not speak the Metadata versions that carry topic ids
    return KafkaAdminClient(**client_kwargs(settings, "kafka-python"), client_id=client_id, **kw)
