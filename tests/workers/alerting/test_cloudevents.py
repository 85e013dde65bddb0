"""CloudEvents 1.0 envelopes (workers/alerting/cloudevents.py) and the Kafka sink that writes them."""
from __future__ import annotations

import json

import pytest

from workers.alerting import cloudevents as ce
from workers.alerting.model import AlertInstance, NotificationGroup, Route
from workers.alerting.sinks.kafka_sink import KafkaSink

T = 1_714_564_800.0  # 2024-05-01T12:00:00Z
LABELS = {"topic": "AAPL", "language": "en", "detector": "volume_spike", "window": "60s", "severity": "warning"}


def firing(**kw) -> AlertInstance:
    return AlertInstance(labels=LABELS, state="firing", active_since=T - 60, last_active_at=T, fired_at=T,
                         last_notified_at=T, annotations={"value": 50.0, "baseline": 10.0, "sample_events": ["e1"]},
                         **kw)


def group(alerts) -> NotificationGroup:
    r = Route(id="r1", receivers=[{"type": "sse", "name": "live"}])
    return NotificationGroup(group_key="r1:abc", route_id="r1", receivers=r.receivers, group_labels={"topic": "AAPL"},
                             status="firing", alerts=alerts, created_at=T)


def test_alert_event_envelope():
    a = firing()
    ev = ce.alert_event(a)
    ce.validate(ev)
    assert ev["specversion"] == "1.0"
    assert ev["type"] == "io.babelwatch.alert.firing"
    assert ev["source"] == ce.DEFAULT_SOURCE
    assert ev["time"] == "2024-05-01T12:00:00.000Z"
    assert ev["datacontenttype"] == "application/json"
    assert ev["subject"] == a.fingerprint
    assert ev["data"]["labels"] == LABELS and ev["data"]["fingerprint"] == a.fingerprint
    assert ev["data"]["annotations"]["sample_events"] == ["e1"]
    assert json.loads(ce.dumps(ev)) == ev  # JSON round trip


def test_resolved_type_and_ids():
    a = firing()
    r = a.model_copy(update={"state": "resolved", "resolved_at": T + 60, "last_notified_at": T + 60})
    assert ce.alert_event(r)["type"] == "io.babelwatch.alert.resolved"
    assert ce.alert_event(a)["id"] == ce.alert_event(firing())["id"]  # deterministic: dedupable
    assert ce.alert_event(a)["id"] != ce.alert_event(r)["id"]
    repeat = a.model_copy(update={"last_notified_at": T + 3600})
    assert ce.alert_event(repeat)["id"] != ce.alert_event(a)["id"]


def test_group_event():
    g = group([firing()])
    ev = ce.group_event(g, "hook")
    ce.validate(ev)
    assert ev["type"] == "io.babelwatch.alertgroup.firing" and ev["subject"] == "r1:abc"
    assert ev["data"]["receiver"] == "hook" and ev["data"]["groupLabels"] == {"topic": "AAPL"}
    assert ev["data"]["alerts"][0]["startsAt"] == "2024-05-01T12:00:00.000Z"
    assert ce.group_event(g, "hook")["id"] == ev["id"] != ce.group_event(g, "other")["id"]


@pytest.mark.parametrize("broken", [
    {"specversion": "0.3"},
    {"id": ""},
    {"source": None},
    {"time": "yesterday"},
    {"Bad-Name": 1},
    {"data_base64": "AA=="},
])
def test_validate_rejects(broken):
    ev = {**ce.alert_event(firing()), **broken}
    if broken.get("source", 1) is None:
        del ev["source"]
    with pytest.raises(ValueError):
        ce.validate(ev)


def test_extensions():
    ev = ce.envelope("io.babelwatch.test", {"x": 1}, partitionkey="AAPL")
    ce.validate(ev)
    with pytest.raises(ValueError):
        ce.envelope("io.babelwatch.test", {}, **{"Not_OK": 1})


async def test_kafka_sink_produces_cloudevents():
    produced = []

    async def produce(topic, key, value):
        produced.append((topic, key, value))

    sink = KafkaSink("alerts.subscriber", produce, name="k")
    await sink.start()
    g = group([firing()])
    await sink.send(g)
    await sink.send_alerts([firing()])
    await sink.stop()
    (t1, k1, v1), (t2, k2, v2) = produced
    assert t1 == t2 == "alerts.subscriber"
    assert k1 == b"r1:abc" and k2 == firing().fingerprint.encode()
    e1, e2 = json.loads(v1), json.loads(v2)
    ce.validate(e1)
    ce.validate(e2)
    assert e1["type"] == "io.babelwatch.alertgroup.firing" and e2["type"] == "io.babelwatch.alert.firing"
