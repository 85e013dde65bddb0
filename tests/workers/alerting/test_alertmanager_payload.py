"""Alertmanager sink: the body validates against Alertmanager's OpenAPI v2 ``postableAlerts`` schema
and is POSTed to ``/api/v2/alerts`` of a local fake Alertmanager that validates and records it."""
from __future__ import annotations

import json
from datetime import datetime

import jsonschema
import pytest
from bw_http import LocalReceiver

from workers.alerting.model import AlertInstance, AlertmanagerReceiver, NotificationGroup
from workers.alerting.sinks.alertmanager import AlertmanagerSink, alerts_url, postable_alerts
from workers.alerting.sinks.alertmanager_schema import validate_postable_alerts
from workers.alerting.sinks.netguard import AddressGuard

NOW = 1_714_564_800.0  # 2024-05-01T12:00:00Z
LABELS = {"topic": "AAPL", "language": "en", "detector": "volume_spike", "window": "60s", "severity": "critical"}


def parse(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def group() -> NotificationGroup:
    firing = AlertInstance(labels=LABELS, state="firing", active_since=NOW - 120, last_active_at=NOW,
                           fired_at=NOW - 60, last_notified_at=NOW,
                           annotations={"value": 50.0, "baseline": 10.0, "summary": "AAPL [en]: 50 vs 10",
                                        "sample_events": ["e1", "e2"]})
    resolved = AlertInstance(labels={**LABELS, "topic": "TSLA"}, state="resolved", active_since=NOW - 600,
                             fired_at=NOW - 500, resolved_at=NOW - 5, last_notified_at=NOW - 5,
                             annotations={"value": 3.0})
    return NotificationGroup(group_key="r1:g", route_id="r1", receivers=[], group_labels={},
                             status="firing", alerts=[firing, resolved], created_at=NOW, repeat_interval=600)


def test_payload_matches_the_openapi_schema():
    body = postable_alerts(group(), NOW, generator_url="https://babelwatch.example/alerts",
                           extra_labels={"team": "markets"})
    validate_postable_alerts(body)
    validate_postable_alerts(json.loads(json.dumps(body)))
    firing, resolved = body
    assert firing["labels"] == {**LABELS, "alertname": "babelwatch_volume_spike", "team": "markets"}
    assert firing["annotations"]["value"] == "50.0" and firing["annotations"]["sample_events"] == '["e1","e2"]'
    assert parse(firing["startsAt"]) == NOW - 60
    assert parse(firing["endsAt"]) == NOW + 1800  # lease: 3 x repeat_interval, renewed by repeats
    assert parse(resolved["endsAt"]) == NOW - 5  # a past endsAt is how Alertmanager learns "resolved"
    assert firing["generatorURL"].startswith("https://babelwatch.example/alerts?fingerprint=")
    default = postable_alerts(group(), NOW)
    validate_postable_alerts(default)
    assert default[0]["generatorURL"].startswith("urn:babelwatch:alert:")


@pytest.mark.parametrize("broken", [
    {"labels": {"a": 1}},                           # label values are strings
    {"annotations": {"value": 50.0}},               # so are annotations
    {"labels": {"a": "b"}, "startsAt": "yesterday"},  # date-time
    {"annotations": {}},                            # labels required
    {"labels": {"a": "b"}, "generatorURL": "no scheme"},
])
def test_schema_has_teeth(broken):
    with pytest.raises(jsonschema.ValidationError):
        validate_postable_alerts([broken])


def test_alerts_url():
    assert alerts_url("http://am:9093") == "http://am:9093/api/v2/alerts"
    assert alerts_url("http://am:9093/prefix/") == "http://am:9093/prefix/api/v2/alerts"
    assert alerts_url("http://am:9093/api/v2/alerts") == "http://am:9093/api/v2/alerts"


@pytest.fixture
async def fake_alertmanager():
    srv = await LocalReceiver([200], check=lambda body: validate_postable_alerts(json.loads(body))).start()
    yield srv
    await srv.stop()


async def test_delivered_to_a_fake_alertmanager(fake_alertmanager):
    srv = fake_alertmanager
    dead = []
    sink = AlertmanagerSink(AlertmanagerReceiver(name="am", url=srv.base, backoff_s=0.01),
                            AddressGuard(allow_private=True), dead_letter=dead.append, clock=lambda: NOW)
    await sink.start()
    try:
        await sink.send(group())
    finally:
        await sink.stop()
    assert dead == [] and len(srv.requests) == 1
    req = srv.requests[0]
    assert (req.method, req.path) == ("POST", "/api/v2/alerts")
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.body) == sink.payload(group())


async def test_alertmanager_rejecting_the_body_is_dead_lettered(fake_alertmanager):
    srv = fake_alertmanager
    srv.check = lambda body: (_ for _ in ()).throw(ValueError("bad body"))
    dead = []
    sink = AlertmanagerSink(AlertmanagerReceiver(name="am", url=srv.base, backoff_s=0.01),
                            AddressGuard(allow_private=True), dead_letter=dead.append)
    with pytest.raises(Exception):
        await sink.send(group())
    await sink.stop()
    assert len(srv.requests) == 1 and dead[0].status == 400  # 4xx: not retried


async def test_alertmanager_sink_has_the_ssrf_guard():
    dead = []
    sink = AlertmanagerSink(AlertmanagerReceiver(name="am", url="http://10.0.5.5:9093"), AddressGuard(),
                            dead_letter=dead.append)
    with pytest.raises(Exception):
        await sink.send(group())
    await sink.stop()
    assert "refused" in dead[0].error
