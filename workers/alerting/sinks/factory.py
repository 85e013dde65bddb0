"""Receiver config -> Sink, with the process-wide pieces (producer, broadcaster, guard, secrets)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from workers.alerting.cloudevents import DEFAULT_SOURCE
from workers.alerting.model import AlertmanagerReceiver, KafkaReceiver, SseReceiver, WebhookReceiver
from workers.alerting.sinks.alertmanager import AlertmanagerSink
from workers.alerting.sinks.base import DeadLetterFn, Sink
from workers.alerting.sinks.kafka_sink import KafkaSink, Produce
from workers.alerting.sinks.netguard import AddressGuard
from workers.alerting.sinks.sse import SseBroadcaster, SseSink
from workers.alerting.sinks.webhook import EnvSecrets, SecretLookup, WebhookSink


@dataclass
class SinkContext:
    guard: AddressGuard = field(default_factory=AddressGuard)
    produce: Produce | None = None
    broadcaster: SseBroadcaster | None = None
    secrets: SecretLookup = field(default_factory=EnvSecrets)
    dead_letter: DeadLetterFn | None = None
    source: str = DEFAULT_SOURCE
    generator_url: str = "urn:babelwatch:alert"
    alertmanager_extra_labels: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.time


def build_sink(receiver, ctx: SinkContext) -> Sink:
    if isinstance(receiver, WebhookReceiver):
        return WebhookSink(receiver, ctx.guard, secrets=ctx.secrets, dead_letter=ctx.dead_letter,
                           source=ctx.source, generator_url=ctx.generator_url, clock=ctx.clock)
    if isinstance(receiver, AlertmanagerReceiver):
        return AlertmanagerSink(receiver, ctx.guard, dead_letter=ctx.dead_letter, generator_url=ctx.generator_url,
                                extra_labels=ctx.alertmanager_extra_labels, clock=ctx.clock)
    if isinstance(receiver, KafkaReceiver):
        if ctx.produce is None:
            raise ValueError("a Kafka receiver needs SinkContext.produce")
        return KafkaSink(receiver.topic, ctx.produce, name=receiver.name, source=ctx.source)
    if isinstance(receiver, SseReceiver):
        if ctx.broadcaster is None:
            raise ValueError("an SSE receiver needs SinkContext.broadcaster")
        return SseSink(receiver, ctx.broadcaster, ctx.source)
    raise TypeError(f"unknown receiver {type(receiver).__name__}")


def sink_factory(ctx: SinkContext) -> Callable[[object], Sink]:
    return lambda receiver: build_sink(receiver, ctx)
