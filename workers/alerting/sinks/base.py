"""The sink interface every receiver type implements, and the dead-letter record."""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from workers.alerting.model import NotificationGroup


class Sink(ABC):
    """One receiver's delivery. ``send`` may take as long as its retries need; the dispatcher runs
    each sink in its own task, so a slow sink only delays itself. ``send`` raises on failure (after
    any retries and dead-lettering of its own)."""

    name: str = ""

    async def start(self) -> None:
        """Open connections/clients. Called once, in the sink's own task, before the first send."""

    async def stop(self) -> None:
        """Close what start opened."""

    @abstractmethod
    async def send(self, group: NotificationGroup) -> None:
        ...


class DeliveryFailed(Exception):
    """A notification that could not be delivered (after the last retry, or refused outright)."""


@dataclass
class FailedDelivery:
    """What goes to the dead-letter callable after the last retry (or a permanent refusal)."""

    receiver: str
    receiver_type: str
    url: str
    group_key: str
    event_id: str
    body: bytes
    error: str
    attempts: int
    at: float
    status: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


DeadLetterFn = Callable[[FailedDelivery], Awaitable[None] | None]


async def call_dead_letter(fn: DeadLetterFn | None, item: FailedDelivery) -> None:
    if fn is None:
        return
    res = fn(item)
    if inspect.isawaitable(res):
        await res
