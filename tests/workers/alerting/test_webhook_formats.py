"""Webhook formats per receiver (cloudevents, alertmanager, slack) against a real local HTTP
receiver: the body's shape, the same signature, retries and SSRF guard for every format; a hostile
label cannot inject a Slack mention; an unknown format is refused when the receiver is written."""
from __future__ import annotations

import json
import time

import pytest
from bw_http import LocalReceiver, local_receivers
from pydantic import ValidationError

from workers.alerting.model import AlertInstance, NotificationGroup, Route, WebhookReceiver
from workers.alerting.sinks.base import DeliveryFailed
from workers.alerting.sinks.netguard import AddressGuard
from workers.alerting.sinks.webhook import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSink,
    render,
    verify_signature,
)

SECRET = b"format-test-shared-secret"
SECRETS = {"env:BABELWATCH_SECRET_FMT": SECRET}.get
LOCAL = AddressGuard(allow_private=True)
LABELS = {"topic": "TSLA", "language": "en", "detector": "volume_spike", "window": "60s", "severity": "critical",
          "stage": "open"}


def group(status: str = "firing", labels: dict | None = None, n: int = 1) -> NotificationGroup:
    now = time.time()
    alerts = [AlertInstance(labels={**(labels or LABELS), "language": lang}, state=status,
                            active_since=now - 60, last_active_at=now, fired_at=now - 30,
                            resolved_at=now if status == "resolved" else None,
                            annotations={"summary": "volume 60 vs baseline 4", "value": 60.0, "sample_events": ["e1"]})
              for lang in ["en", "*", "de"][:n]]
    return NotificationGroup(group_key="desk:{topic=TSLA}", route_id="desk", receivers=[],
                             group_labels={"topic": "TSLA"}, status=status, alerts=alerts, created_at=now)


def hook(url: str, fmt: str, **kw) -> WebhookReceiver:
    return WebhookReceiver(name="fmt", url=url, format=fmt, **{"secret_ref": "env:BABELWATCH_SECRET_FMT",
                           "timeout_s": 2.0, "retries": 2, "backoff_s": 0.01, "max_backoff_s": 0.02, **kw})


async def deliver(receiver: WebhookReceiver, g: NotificationGroup, guard: AddressGuard = LOCAL) -> list:
    dead: list = []
    sink = WebhookSink(receiver, guard, secrets=SECRETS, dead_letter=dead.append,
                       generator_url="https://dash.example.com/")
    await sink.start()
    try:
        await sink.send(g)
    finally:
        await sink.stop()
    return dead


receiver = pytest.fixture(local_receivers)  # make(script) -> a started LocalReceiver, stopped after


def signed(req) -> bool:
    return verify_signature(SECRET, req.body, req.headers[TIMESTAMP_HEADER], req.headers[SIGNATURE_HEADER])


async def test_alertmanager_format_is_alertmanagers_webhook_body(receiver):
    srv = await receiver()
    g = group(n=2)
    assert await deliver(hook(srv.url(), "alertmanager"), g) == []
    req = srv.requests[0]
    assert req.headers["Content-Type"].startswith("application/json") and signed(req)
    body = json.loads(req.body)
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "fmt"
    assert body["groupKey"] == g.group_key and body["groupLabels"] == {"topic": "TSLA"}
    assert body["externalURL"] == "https://dash.example.com/" and body["truncatedAlerts"] == 0
    assert len(body["alerts"]) == 2
    a = body["alerts"][0]
    assert a["labels"]["alertname"] == "babelwatch_volume_spike" and a["labels"]["topic"] == "TSLA"
    assert all(isinstance(v, str) for v in a["annotations"].values())  # Alertmanager's annotations are strings
    assert a["annotations"]["sample_events"] == '["e1"]'
    assert a["endsAt"] == "0001-01-01T00:00:00Z" and a["status"] == "firing"
    assert a["generatorURL"] == f"https://dash.example.com/?fingerprint={a['fingerprint']}"
    assert body["commonLabels"]["topic"] == "TSLA" and "language" not in body["commonLabels"]
    assert req.headers[EVENT_ID_HEADER]  # the same dedupe id as the CloudEvent's


async def test_slack_format_escapes_and_signs(receiver):
    srv = await receiver()
    hostile = {**LABELS, "topic": "<!channel> <https://evil.example|click> & co"}
    g = group(labels=hostile)
    await deliver(hook(srv.url(), "slack"), g)
    req = srv.requests[0]
    assert req.headers["Content-Type"].startswith("application/json") and signed(req)
    body = json.loads(req.body)
    assert body["text"].startswith("[FIRING:1] topic=TSLA")
    att = body["attachments"][0]
    assert att["color"] == "#d93025" and att["text"] == "volume 60 vs baseline 4"
    assert att["title_link"].startswith("https://dash.example.com/?fingerprint=")
    topic_field = next(f for f in att["fields"] if f["title"] == "topic")
    assert topic_field["value"] == "&lt;!channel&gt; &lt;https://evil.example|click&gt; &amp; co"
    assert "<" not in req.body.decode()  # nothing Slack would read as a mention or a link


async def test_slack_resolved_is_green(receiver):
    srv = await receiver()
    await deliver(hook(srv.url(), "slack"), group("resolved"))
    body = json.loads(srv.requests[0].body)
    assert body["text"].startswith("[RESOLVED:1]") and body["attachments"][0]["color"] == "#188038"


@pytest.mark.parametrize("fmt", ["alertmanager", "slack"])
async def test_every_format_retries_the_same_event(receiver, fmt):
    srv = await receiver([500, 503, 200])
    assert await deliver(hook(srv.url(), fmt), group()) == []
    assert len(srv.requests) == 3
    assert len({r.body for r in srv.requests}) == 1  # the same body each attempt
    assert len({r.headers[EVENT_ID_HEADER] for r in srv.requests}) == 1
    assert all(signed(r) for r in srv.requests)


@pytest.mark.parametrize("fmt", ["alertmanager", "slack"])
async def test_every_format_goes_through_the_ssrf_guard(receiver, fmt):
    srv = await receiver()
    with pytest.raises(DeliveryFailed):
        await deliver(hook(srv.url(), fmt, retries=0), group(), guard=AddressGuard())  # loopback refused
    assert srv.requests == []


def test_default_format_is_cloudevents_and_unknown_is_refused():
    r = WebhookReceiver(name="x", url="https://hooks.example.com/x")
    assert r.format == "cloudevents"
    with pytest.raises(ValidationError, match="format"):
        WebhookReceiver(name="x", url="https://hooks.example.com/x", format="teams-xml")
    route = Route.model_validate({"id": "r", "receivers": [{"type": "webhook", "url": "https://h.example.com/",
                                                            "format": "slack"}]})
    assert route.receivers[0].format == "slack"
    with pytest.raises(ValueError, match="unknown webhook format"):
        render("xml", {}, group(), "x")
