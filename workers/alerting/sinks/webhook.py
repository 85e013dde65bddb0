"""Webhook sink: the notification group as a CloudEvent JSON body, HMAC-SHA256 signed.

Headers of every attempt::

    Content-Type: application/cloudevents+json; charset=utf-8
    X-Babelwatch-Event-Id: <CloudEvent id; the same on every retry: deduplicate on it>
    X-Babelwatch-Timestamp: <unix seconds of this attempt>
    X-Babelwatch-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

The timestamp is inside the signed bytes, so a captured request cannot be replayed later with a
fresh timestamp: receivers verify the HMAC (constant-time) and reject timestamps older than a few
minutes (:func:`verify_signature` does both). The secret itself is never stored with the
subscription, only ``secret_ref``; :class:`EnvSecrets` resolves ``env:NAME`` refs, and only names
under ``BABELWATCH_SECRET_`` so a subscription cannot make us sign with an arbitrary environment
variable.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import time
from typing import Callable

from workers.alerting.cloudevents import CONTENT_TYPE, DEFAULT_SOURCE, dumps, group_event
from workers.alerting.model import NotificationGroup, WebhookReceiver
from workers.alerting.sinks.base import DeadLetterFn, DeliveryFailed, FailedDelivery, call_dead_letter
from workers.alerting.sinks.delivery import HttpSink
from workers.alerting.sinks.netguard import AddressGuard

SIGNATURE_HEADER = "X-Babelwatch-Signature"
TIMESTAMP_HEADER = "X-Babelwatch-Timestamp"
EVENT_ID_HEADER = "X-Babelwatch-Event-Id"
SecretLookup = Callable[[str], "bytes | None"]


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, timestamp: str | None, signature: str | None,
                     now: float | None = None, tolerance_s: float = 300.0) -> bool:
    """What a receiver does: signature matches and the timestamp is recent (replay window)."""
    if not timestamp or not signature:
        return False
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    now = time.time() if now is None else now
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class EnvSecrets:
    """``env:NAME`` -> the bytes of environment variable NAME, for NAME under ``prefix`` only."""

    def __init__(self, prefix: str = "BABELWATCH_SECRET_", environ=os.environ) -> None:
        self.prefix = prefix
        self.environ = environ

    def __call__(self, ref: str) -> bytes | None:
        scheme, _, name = ref.partition(":")
        if scheme != "env" or not name.startswith(self.prefix):
            return None
        value = self.environ.get(name)
        return value.encode() if value else None


class WebhookSink(HttpSink):
    receiver_type = "webhook"

    def __init__(
        self,
        receiver: WebhookReceiver,
        guard: AddressGuard,
        *,
        secrets: SecretLookup = EnvSecrets(),
        dead_letter: DeadLetterFn | None = None,
        source: str = DEFAULT_SOURCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(receiver, guard, dead_letter=dead_letter, clock=clock)
        self.secrets = secrets
        self.source = source

    async def send(self, group: NotificationGroup) -> None:
        event = group_event(group, self.receiver.name, self.source)
        body = dumps(event)
        secret: bytes | None = None
        if self.receiver.secret_ref:
            secret = self.secrets(self.receiver.secret_ref)
            if not secret:
                error = f"secret {self.receiver.secret_ref!r} not found; not sent unsigned"
                await call_dead_letter(self.dead_letter, FailedDelivery(
                    receiver=self.name, receiver_type="webhook", url=self.receiver.url, group_key=group.group_key,
                    event_id=event["id"], body=body, error=error, attempts=0, at=self.clock()))
                raise DeliveryFailed(error)

        def headers() -> dict[str, str]:
            ts = str(int(self.clock()))
            h = {"Content-Type": f"{CONTENT_TYPE}; charset=utf-8", EVENT_ID_HEADER: event["id"], TIMESTAMP_HEADER: ts}
            if secret is not None:
                h[SIGNATURE_HEADER] = sign(secret, ts, body)
            return h

        await self.http.post(self.receiver.url, body, headers, group_key=group.group_key, event_id=event["id"])
