"""CloudEvents 1.0 JSON envelopes (structured mode) for alert notifications.

Two event kinds:

* one alert's transition or repeat -- ``io.babelwatch.alert.firing`` / ``.resolved``, ``subject`` =
  the alert fingerprint, ``data`` = the AlertInstance (the ``alerts`` Kafka topic carries these);
* one route's notification group -- ``io.babelwatch.alertgroup.firing`` / ``.resolved``, ``subject``
  = the group key, ``data`` = :meth:`NotificationGroup.payload` (webhooks, Kafka receivers, SSE).

Event ids are deterministic (UUIDv5 of what the event is about and when), so a redelivery or a
retry carries the same id and consumers can deduplicate on (source, id) as the spec intends.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from workers.alerting.model import AlertInstance, NotificationGroup, rfc3339

SPECVERSION = "1.0"
DEFAULT_SOURCE = "/babelwatch/alerting"
CONTENT_TYPE = "application/cloudevents+json"
DATA_CONTENT_TYPE = "application/json"
ALERT_TYPE = "io.babelwatch.alert.{}"
GROUP_TYPE = "io.babelwatch.alertgroup.{}"

_REQUIRED = ("specversion", "id", "source", "type")
_ATTR_NAME = re.compile(r"^[a-z0-9]{1,20}\Z")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")


def envelope(type_: str, data: Any, *, source: str = DEFAULT_SOURCE, id_: str | None = None,
             time: float | None = None, subject: str | None = None, **extensions: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": id_ or uuid.uuid4().hex,
        "source": source,
        "type": type_,
        "datacontenttype": DATA_CONTENT_TYPE,
    }
    if time is not None:
        event["time"] = rfc3339(time)
    if subject is not None:
        event["subject"] = subject
    for name, value in extensions.items():
        if not _ATTR_NAME.match(name):
            raise ValueError(f"extension attribute {name!r} must be 1-20 lowercase letters/digits")
        event[name] = value
    event["data"] = data
    return event


def alert_event(alert: AlertInstance, source: str = DEFAULT_SOURCE, version: int | None = None) -> dict[str, Any]:
    """``version``: the lifecycle record's version this notification was committed with; it
    tells apart two transitions of one alert at the same clock reading (fire, resolve, fire again
    in one batch), which would otherwise share an id and be dropped as duplicates."""
    kind = "resolved" if alert.state == "resolved" else "firing"
    at = alert.last_notified_at if alert.last_notified_at is not None else (alert.resolved_at or alert.fired_at)
    about = f"babelwatch:alert:{alert.fingerprint}:{kind}:{at!r}" + (f":v{version}" if version is not None else "")
    eid = uuid.uuid5(uuid.NAMESPACE_URL, about).hex
    return envelope(ALERT_TYPE.format(kind), alert.model_dump(mode="json"), source=source, id_=eid,
                    time=at, subject=alert.fingerprint)


def group_event(group: NotificationGroup, receiver: str = "", source: str = DEFAULT_SOURCE) -> dict[str, Any]:
    eid = uuid.uuid5(uuid.NAMESPACE_URL, f"babelwatch:group:{group.id}:{receiver}").hex
    return envelope(GROUP_TYPE.format(group.status), group.payload(receiver), source=source, id_=eid,
                    time=group.created_at, subject=group.group_key)


def dumps(event: dict[str, Any]) -> bytes:
    """Compact JSON bytes (non-JSON values in data become strings rather than failing)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def validate(event: dict[str, Any]) -> None:
    """Raise ValueError unless ``event`` is a well-formed CloudEvents 1.0 structured JSON event."""
    for attr in _REQUIRED:
        if not isinstance(event.get(attr), str) or not event[attr]:
            raise ValueError(f"required attribute {attr!r} missing or not a non-empty string")
    if event["specversion"] != SPECVERSION:
        raise ValueError(f"specversion must be {SPECVERSION!r}")
    for name in event:
        if name not in ("data", "data_base64") and not _ATTR_NAME.match(name):
            raise ValueError(f"attribute name {name!r} is not 1-20 lowercase letters/digits")
    if "time" in event and not (isinstance(event["time"], str) and _RFC3339.match(event["time"])):
        raise ValueError("time must be an RFC 3339 timestamp")
    for optional in ("datacontenttype", "subject", "dataschema"):
        if optional in event and (not isinstance(event[optional], str) or not event[optional]):
            raise ValueError(f"{optional!r} must be a non-empty string when present")
    if "data" in event and "data_base64" in event:
        raise ValueError("data and data_base64 are exclusive")
