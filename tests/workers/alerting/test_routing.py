"""Routing (workers/alerting/routing.py): matchers (=, !=, =~, !~), group_by, group_wait /
group_interval / repeat_interval timing, silences with start/end, config validation."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from workers.alerting.model import AlertInstance, Matcher, Route, Silence
from workers.alerting.routing import Router

T0 = 1_000_000.0
SSE = [{"type": "sse", "name": "live"}]


def alert(topic="AAPL", lang="en", severity="warning", state="firing", detector="volume_spike", t=T0, **extra):
    labels = {"topic": topic, "language": lang, "detector": detector, "window": "60s", "severity": severity,
              **extra}
    return AlertInstance(labels=labels, state=state, active_since=t, last_active_at=t, fired_at=t,
                         resolved_at=t if state == "resolved" else None, last_notified_at=t,
                         annotations={"value": 50})


def route(**kw) -> Route:
    return Route(**{"id": "r1", "receivers": SSE, "group_wait": 30, "group_interval": 300,
                    "repeat_interval": 3600, **kw})


# ---------------------------------------------------------------------------------------- matchers


@pytest.mark.parametrize("text,labels,expected", [
    ('topic="AAPL"', {"topic": "AAPL"}, True),
    ("topic=AAPL", {"topic": "AAPLX"}, False),
    ('topic!="AAPL"', {"topic": "TSLA"}, True),
    ('topic!="AAPL"', {"topic": "AAPL"}, False),
    ('topic!="AAPL"', {}, True),                         # missing label == ""
    ('region=""', {"topic": "AAPL"}, True),
    ('topic=~"AAPL|TSLA"', {"topic": "TSLA"}, True),
    ('topic=~"AAPL|TSLA"', {"topic": "TSLAX"}, False),   # fully anchored
    ('topic=~"AA"', {"topic": "AAPL"}, False),           # no substring match
    ('topic=~"AA.*"', {"topic": "AAPL"}, True),
    ('language!~"en|de"', {"language": "fr"}, True),
    ('language!~"en|de"', {"language": "en"}, False),
    ('severity=~".*"', {}, True),
])
def test_matchers(text, labels, expected):
    assert Matcher.parse(text).matches(labels) is expected


def test_matcher_forms_and_validation():
    m = Matcher.model_validate({"name": "topic", "value": "A.*", "isRegex": True, "isEqual": False})
    assert m.op == "!~"
    assert str(Matcher.parse('topic=~"a\\"b"')) == 'topic=~"a\\"b"'
    with pytest.raises(ValidationError):
        Matcher.parse('topic=~"(unclosed"')
    with pytest.raises(ValidationError):
        Matcher.parse("not a matcher")
    with pytest.raises(ValidationError):
        Matcher(name="bad-name", value="x")


def test_route_validation():
    r = Route(receivers=[{"type": "webhook", "url": "https://hooks.example.com/x"}, {"type": "sse"}],
              group_wait="30s", group_interval="5m", repeat_interval="1h30m")
    assert (r.group_wait, r.group_interval, r.repeat_interval) == (30, 300, 5400)
    assert [x.name for x in r.receivers] == ["webhook-0", "sse-1"]
    with pytest.raises(ValidationError):
        Route(receivers=[])
    with pytest.raises(ValidationError):
        Route(receivers=[{"type": "webhook", "url": "ftp://x/y"}])
    with pytest.raises(ValidationError):
        Route(receivers=[{"type": "webhook", "url": "https://user:pw@x.example/"}])
    with pytest.raises(ValidationError):
        Route(receivers=SSE, group_by=["...", "topic"])
    with pytest.raises(ValidationError):
        Route(receivers=[{"type": "sse", "name": "a"}, {"type": "sse", "name": "a"}])
    with pytest.raises(ValidationError):
        Route(receivers=SSE, group_wait="soon")


# ----------------------------------------------------------------------------------------- routing


def test_only_matching_routes_get_the_alert():
    r_aapl = route(id="aapl", matchers=['topic="AAPL"'], group_wait=0)
    r_not_en = route(id="not-en", matchers=['language!="en"'], group_wait=0)
    r_re = route(id="re", matchers=['topic=~"AA.*|MSFT"', 'severity!~"info"'], group_wait=0)
    router = Router([r_aapl, r_not_en, r_re])
    router.ingest([alert("AAPL", "en"), alert("MSFT", "de"), alert("TSLA", "en")], now=T0)
    got = {(g.route_id, a.labels["topic"]) for g in router.flush(T0) for a in g.alerts}
    assert got == {("aapl", "AAPL"), ("not-en", "MSFT"), ("re", "AAPL"), ("re", "MSFT")}


def test_group_by_and_group_wait():
    router = Router([route(group_by=["topic"], group_wait=30)])
    router.ingest([alert("AAPL", "en"), alert("AAPL", "de"), alert("TSLA", "en")], now=T0)
    assert router.flush(T0 + 29) == []  # group_wait not over
    assert router.next_flush_at() == T0 + 30
    groups = router.flush(T0 + 30)
    by_topic = {g.group_labels["topic"]: g for g in groups}
    assert set(by_topic) == {"AAPL", "TSLA"}
    assert len(by_topic["AAPL"].alerts) == 2 and by_topic["AAPL"].status == "firing"
    assert by_topic["AAPL"].common_labels()["topic"] == "AAPL"
    assert "language" not in by_topic["AAPL"].common_labels()
    payload = by_topic["AAPL"].payload("live")
    assert payload["groupLabels"] == {"topic": "AAPL"} and len(payload["alerts"]) == 2
    assert all(a["status"] == "firing" and a["endsAt"].startswith("0001") for a in payload["alerts"])


def test_group_by_all_and_none():
    every = Router([route(group_by=["..."], group_wait=0)])
    one = Router([route(group_by=[], group_wait=0)])
    batch = [alert("AAPL"), alert("TSLA"), alert("MSFT")]
    every.ingest(batch, now=T0)
    one.ingest(batch, now=T0)
    assert len(every.flush(T0)) == 3
    assert [len(g.alerts) for g in one.flush(T0)] == [3]


def test_group_interval_batches_changes_and_repeat_interval():
    router = Router([route(group_by=["topic"], group_wait=30, group_interval=300, repeat_interval=3600)])
    router.ingest([alert("AAPL", "en")], now=T0)
    assert len(router.flush(T0 + 30)) == 1
    router.ingest([alert("AAPL", "de", t=T0 + 60)], now=T0 + 60)  # new alert in an existing group
    assert router.flush(T0 + 100) == []  # waits for group_interval, not group_wait
    g = router.flush(T0 + 330)
    assert len(g) == 1 and len(g[0].alerts) == 2
    # nothing new: silent at every group_interval until repeat_interval has passed
    for k in range(2, 13):  # ticks every 300 s after the last notification at T0+330
        assert router.flush(T0 + 30 + 300 * k) == [], k
    repeat = router.flush(T0 + 30 + 300 * 13)  # first tick >= 3600 s after T0+330
    assert len(repeat) == 1 and len(repeat[0].alerts) == 2


def test_resolved_sent_once_then_group_closes():
    router = Router([route(group_by=["topic"], group_wait=0, group_interval=60)])
    router.ingest([alert("AAPL", "en"), alert("AAPL", "de")], now=T0)
    assert len(router.flush(T0)) == 1
    router.ingest([alert("AAPL", "en", state="resolved", t=T0 + 10)], now=T0 + 10)
    g = router.flush(T0 + 60)
    assert len(g) == 1 and g[0].status == "firing"
    assert sorted(a.state for a in g[0].alerts) == ["firing", "resolved"]
    router.ingest([alert("AAPL", "de", state="resolved", t=T0 + 70)], now=T0 + 70)
    g = router.flush(T0 + 120)
    assert len(g) == 1 and g[0].status == "resolved"
    assert router.groups == {}
    assert router.flush(T0 + 1000) == []


def test_resolved_for_an_unknown_alert_is_ignored():
    router = Router([route(group_wait=0)])
    router.ingest([alert(state="resolved")], now=T0)
    assert router.groups == {} and router.flush(T0) == []


def test_send_resolved_false():
    router = Router([route(group_wait=0, group_interval=60, send_resolved=False)])
    router.ingest([alert()], now=T0)
    assert len(router.flush(T0)) == 1
    router.ingest([alert(state="resolved")], now=T0 + 1)
    assert router.flush(T0 + 60) == []
    assert router.groups == {}


# ---------------------------------------------------------------------------------------- silences


def test_silence_mutes_only_while_active():
    s = Silence(matchers=['topic="AAPL"', 'severity=~"warn.*"'], starts_at=T0 + 100, ends_at=T0 + 200,
                created_by="ops", comment="maintenance")
    assert (s.state(T0), s.state(T0 + 150), s.state(T0 + 200)) == ("pending", "active", "expired")
    router = Router([route(group_wait=0, group_interval=60, group_by=["..."])], [s])
    router.ingest([alert("AAPL"), alert("TSLA")], now=T0 + 100)
    groups = router.flush(T0 + 100)
    assert [a.labels["topic"] for g in groups for a in g.alerts] == ["TSLA"]
    assert router.silenced_by(alert("AAPL").labels, T0 + 150) == [s.id]
    assert router.silenced_by(alert("AAPL", severity="critical").labels, T0 + 150) == []
    assert router.flush(T0 + 160) == []  # still silenced
    groups = router.flush(T0 + 220)  # silence over: AAPL was never notified -> notified now
    assert [a.labels["topic"] for g in groups for a in g.alerts] == ["AAPL"]


def test_silence_created_after_ingest_still_mutes_at_flush():
    router = Router([route(group_wait=30)])
    router.ingest([alert("AAPL")], now=T0)
    router.set_silences([Silence(matchers=['topic="AAPL"'], starts_at=T0, ends_at=T0 + 3600, created_by="ops")])
    assert router.flush(T0 + 30) == []


def test_silence_validation():
    with pytest.raises(ValidationError):
        Silence(matchers=[], starts_at=T0, ends_at=T0 + 1, created_by="ops")
    with pytest.raises(ValidationError):
        Silence(matchers=['topic="A"'], starts_at=T0, ends_at=T0, created_by="ops")
    s = Silence(matchers=['topic="A"'], starts_at="2024-05-01T00:00:00Z", ends_at="2024-05-01T01:00:00Z",
                created_by="ops")
    assert s.ends_at - s.starts_at == 3600


def test_route_change_keeps_or_resets_groups():
    r = route(group_wait=0, group_by=["topic"])
    router = Router([r])
    router.ingest([alert("AAPL")], now=T0)
    router.set_routes([r.model_copy(update={"receivers": r.receivers})])
    assert len(router.groups) == 1
    router.set_routes([route(group_wait=0, group_by=["language"])])
    assert router.groups == {}  # grouping changed: groups start over
    router.set_routes([])
    router.ingest([alert("AAPL")], now=T0)
    assert router.groups == {}


def test_hostile_topic_against_a_catastrophic_regex_routes_in_linear_time():
    """A producer picks the topic: `(a+)+$` against a long run of 'a's froze Python's re for ~12 s at
    25 characters (each more doubled it). On RE2 the router stays fast and still routes correctly."""
    import time

    router = Router([route(matchers=[Matcher.parse("topic=~(a+)+$")]),
                     route(id="r2", matchers=[Matcher.parse('topic!~"(a|aa)+$"')])],
                    [Silence(matchers=[Matcher.parse("topic=~(a*)*b")], starts_at=T0 - 1, ends_at=T0 + 10**6,
                             created_by="t")])
    hostile = alert(topic="a" * 1000 + "!")  # label values are capped at 1024 characters
    t0 = time.perf_counter()
    for _ in range(100):
        router.ingest([hostile], now=T0)
    router.flush(now=T0 + 30)
    assert time.perf_counter() - t0 < 1.0
    assert [g.route.id for g in router.groups.values()] == ["r2"]  # r1's regex does not match: '!' at the end
