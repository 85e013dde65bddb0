"""Alertmanager sink: ``POST <url>/api/v2/alerts`` with a ``postableAlerts`` body.

So users' existing Alertmanager routing (Slack, PagerDuty, ...) works unchanged: labels are the
alert's labels plus ``alertname`` (``babelwatch_<detector>`` unless the alert has one) and any
``extra_labels``; annotation values are strings (Alertmanager's labelSet), non-strings as JSON.

``endsAt``: the resolve time for resolved alerts. For firing ones it is a lease, like Prometheus'
``ValidUntil``: ``now + lease_factor * repeat_interval`` (at least ``min_lease_s``). The route
re-sends firing alerts every ``repeat_interval``, which renews the lease; if babelwatch stops,
Alertmanager resolves the alert by itself when the lease runs out.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Mapping

from workers.alerting.model import AlertmanagerReceiver, NotificationGroup, rfc3339
from workers.alerting.sinks.base import DeadLetterFn
from workers.alerting.sinks.delivery import HttpSink
from workers.alerting.sinks.netguard import AddressGuard
from workers.alerting.story_notes import render_stories

API_PATH = "/api/v2/alerts"


def alerts_url(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(API_PATH) else base + API_PATH


def _annotation(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), default=str)


def _annotations(annotations: Mapping[str, Any]) -> dict[str, str]:
    # the stories behind an alert as readable lines (workers.alerting.story_notes)
    return {k: render_stories(v) if k == "stories" else _annotation(v) for k, v in annotations.items()}


def generator_link(base: str, fp: str) -> str:
    """``urn:...:<fp>`` for a URN base, else ``<base>?fingerprint=<fp>`` (e.g. a dashboard URL)."""
    if base.startswith("urn:"):
        return f"{base}:{fp}"
    return f"{base}{'&' if '?' in base else '?'}fingerprint={fp}"


def postable_alerts(group: NotificationGroup, now: float, *, generator_url: str = "urn:babelwatch:alert",
                    extra_labels: Mapping[str, str] | None = None, lease_factor: float = 3.0,
                    min_lease_s: float = 300.0) -> list[dict[str, Any]]:
    lease = max(min_lease_s, lease_factor * group.repeat_interval)
    out = []
    for a in group.alerts:
        labels = {**(extra_labels or {}), **a.labels}
        labels.setdefault("alertname", f"babelwatch_{a.labels.get('detector', 'alert')}")
        resolved = a.state == "resolved"
        ends = a.resolved_at if resolved and a.resolved_at is not None else now + lease
        out.append({
            "labels": labels,
            "annotations": _annotations(a.annotations),
            "startsAt": rfc3339(a.starts_at if a.starts_at is not None else now),
            "endsAt": rfc3339(ends),
            "generatorURL": generator_link(generator_url, a.fingerprint),
        })
    return out


class AlertmanagerSink(HttpSink):
    receiver_type = "alertmanager"

    def __init__(
        self,
        receiver: AlertmanagerReceiver,
        guard: AddressGuard,
        *,
        dead_letter: DeadLetterFn | None = None,
        generator_url: str = "urn:babelwatch:alert",
        extra_labels: Mapping[str, str] | None = None,
        lease_factor: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(receiver, guard, dead_letter=dead_letter, clock=clock)
        self.url = alerts_url(receiver.url)
        self.generator_url = generator_url
        self.extra_labels = dict(extra_labels or {})
        self.lease_factor = lease_factor

    def payload(self, group: NotificationGroup) -> list[dict[str, Any]]:
        return postable_alerts(group, self.clock(), generator_url=self.generator_url,
                               extra_labels=self.extra_labels, lease_factor=self.lease_factor)

    async def send(self, group: NotificationGroup) -> None:
        body = json.dumps(self.payload(group), separators=(",", ":"), ensure_ascii=False).encode()
        await self.http.post(self.url, body, {"Content-Type": "application/json"}, group_key=group.group_key,
                             event_id=group.id)
