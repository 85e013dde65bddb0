"""Delivery sinks, one module each: kafka_sink, webhook, alertmanager, sse (see base.Sink).

Shared pieces: ``netguard`` (SSRF guard), ``delivery`` (HTTP retries/backoff/dead-letter),
``factory`` (receiver config -> sink).
"""
from workers.alerting.sinks.base import DeadLetterFn, DeliveryFailed, FailedDelivery, Sink

__all__ = ["DeadLetterFn", "DeliveryFailed", "FailedDelivery", "Sink"]
