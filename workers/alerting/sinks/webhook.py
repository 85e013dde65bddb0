"""Webhook sink: the notification group as a JSON body in the receiver's ``format``, HMAC-SHA256 signed.

Formats (:func:`render`):

* ``cloudevents`` (default): a CloudEvent whose data is the group (``application/cloudevents+json``);
* ``alertmanager``: Alertmanager's own webhook payload (version 4: ``groupKey``, ``status``,
  ``alerts[]`` with ``alertname`` added and string annotations), for tools that take Alertmanager's
  webhooks;
* ``slack``: Slack-compatible incoming-webhook JSON (``text`` plus one attachment per alert), which
  Mattermost and Teams' Slack-compatible hooks accept too; ``&``, ``<`` and ``>`` in alert content are
  escaped, so a label cannot smuggle in a ``<!channel>`` mention or a link.

Every format gets the same event id, signature, retries and SSRF guard. Headers of every attempt::

    Content-Type: application/cloudevents+json; charset=utf-8   (application/json for the others)
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
import json
import os
import time
from typing import Any, Callable

from workers.alerting.cloudevents import CONTENT_TYPE, DEFAULT_SOURCE, dumps, group_event
from workers.alerting.model import _ZERO_TIME, NotificationGroup, WebhookReceiver, rfc3339
from workers.alerting.sinks.base import DeadLetterFn, DeliveryFailed, FailedDelivery, call_dead_letter
from workers.alerting.sinks.delivery import HttpSink
from workers.alerting.sinks.netguard import AddressGuard
from workers.alerting.story_notes import render_stories

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
        generator_url: str = "urn:babelwatch:alert",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(receiver, guard, dead_letter=dead_letter, clock=clock)
        self.secrets = secrets
        self.source = source
        self.generator_url = generator_url

    async def send(self, group: NotificationGroup) -> None:
        event = group_event(group, self.receiver.name, self.source)
        fmt = getattr(self.receiver, "format", "cloudevents")
        body, content_type = render(fmt, event, group, self.receiver.name, self.generator_url)
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
            h = {"Content-Type": content_type, EVENT_ID_HEADER: event["id"], TIMESTAMP_HEADER: ts}
            if secret is not None:
                h[SIGNATURE_HEADER] = sign(secret, ts, body)
            return h

        await self.http.post(self.receiver.url, body, headers, group_key=group.group_key, event_id=event["id"])


# ------------------------------------------------------------------------------------------- formats

FORMATS = ("cloudevents", "alertmanager", "slack")
_JSON = "application/json; charset=utf-8"


def render(fmt: str, event: dict[str, Any], group: NotificationGroup, receiver: str,
           generator_url: str = "urn:babelwatch:alert") -> tuple[bytes, str]:
    """(body, content type) of one notification in a receiver's format (module doc)."""
    if fmt == "alertmanager":
        return _compact(alertmanager_webhook(group, receiver, generator_url)), _JSON
    if fmt == "slack":
        return _compact(slack_message(group, generator_url)), _JSON
    if fmt != "cloudevents":
        raise ValueError(f"unknown webhook format {fmt!r}; one of {', '.join(FORMATS)}")
    return dumps(event), f"{CONTENT_TYPE}; charset=utf-8"


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), default=str)


def _annotation_texts(annotations: dict[str, Any]) -> dict[str, str]:
    """Alertmanager's string annotations; the stories behind an alert as readable lines."""
    return {k: render_stories(v) if k == "stories" else _text(v) for k, v in annotations.items()}


def _link(base: str, fp: str) -> str:
    if base.startswith("urn:"):
        return f"{base}:{fp}"
    return f"{base}{'&' if '?' in base else '?'}fingerprint={fp}"


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    out = dict(dicts[0])
    for d in dicts[1:]:
        out = {k: v for k, v in out.items() if d.get(k) == v}
    return out


def alertmanager_webhook(group: NotificationGroup, receiver: str,
                         generator_url: str = "urn:babelwatch:alert") -> dict[str, Any]:
    """Alertmanager's webhook body (version 4), as Alertmanager itself would POST it."""
    alerts = []
    for a in group.alerts:
        labels = dict(a.labels)
        labels.setdefault("alertname", f"babelwatch_{a.labels.get('detector', 'alert')}")
        alerts.append({
            "status": "resolved" if a.state == "resolved" else "firing",
            "labels": labels,
            "annotations": _annotation_texts(a.annotations),
            "startsAt": rfc3339(a.starts_at) if a.starts_at is not None else _ZERO_TIME,
            "endsAt": rfc3339(a.resolved_at) if a.state == "resolved" and a.resolved_at is not None else _ZERO_TIME,
            "generatorURL": _link(generator_url, a.fingerprint),
            "fingerprint": a.fingerprint,
        })
    return {
        "version": "4",
        "groupKey": group.group_key,
        "truncatedAlerts": 0,
        "status": group.status,
        "receiver": receiver,
        "groupLabels": dict(group.group_labels),
        "commonLabels": _common([x["labels"] for x in alerts]),
        "commonAnnotations": _common([x["annotations"] for x in alerts]),
        "externalURL": generator_url if generator_url.startswith(("http://", "https://")) else "",
        "alerts": alerts,
    }


def slack_escape(text: str) -> str:
    """Slack's three control characters; what remains cannot mention, link or format-escape."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_COLOURS = {"firing": "#d93025", "resolved": "#188038"}


def slack_message(group: NotificationGroup, generator_url: str = "urn:babelwatch:alert") -> dict[str, Any]:
    """Slack incoming-webhook JSON: a one-line ``text`` and one attachment per alert (max 20)."""
    firing = sum(1 for a in group.alerts if a.state != "resolved")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(group.group_labels.items())) or "all alerts"
    head = f"[{group.status.upper()}:{firing if group.status == 'firing' else len(group.alerts)}] {labels}"
    attachments = []
    for a in group.alerts[:20]:
        state = "resolved" if a.state == "resolved" else "firing"
        lab = a.labels
        title = (f"{state.upper()} {lab.get('detector', 'alert')} on {lab.get('topic', '?')} "
                 f"[{lab.get('language', '*')}]")
        summary = _text(a.annotations.get("summary", "")) if a.annotations.get("summary") is not None else ""
        stories = render_stories(a.annotations.get("stories"))  # the stories behind it, readable
        body = f"{summary}\n{stories}" if stories else summary
        attachment = {
            "color": _COLOURS[state],
            "fallback": slack_escape(f"{title}: {summary}")[:300],
            "title": slack_escape(title)[:300],
            "text": slack_escape(body)[:3800],
            "fields": [{"title": slack_escape(k), "value": slack_escape(str(v))[:300], "short": True}
                       for k, v in sorted(lab.items())],
            "footer": "babelwatch",
            "ts": int(a.resolved_at if state == "resolved" and a.resolved_at else a.starts_at or group.created_at),
        }
        if generator_url.startswith(("http://", "https://")):
            attachment["title_link"] = _link(generator_url, a.fingerprint)
        attachments.append(attachment)
    if len(group.alerts) > 20:
        attachments.append({"text": f"... and {len(group.alerts) - 20} more", "footer": "babelwatch"})
    return {"text": slack_escape(head)[:500], "attachments": attachments}
