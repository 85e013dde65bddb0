"""The whole system on real servers: Tansu broker, Redis, Triton, and a `babelwatch worker` process.

Produces valid and invalid events, then checks the promises of the skeleton: every valid event is
scored exactly once, Redis windows count what was sent per topic and language, every invalid
event sits in the dead-letter topic with its reason, and an injected burst raises one alert per
series, emitted to the alerts topic as a CloudEvents 1.0 JSON envelope keyed by its fingerprint.
"""
from __future__ import annotations

import time
from collections import Counter

import orjson
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer

from workers.alerting import cloudevents
from workers.alerting.model import AlertInstance
from bw_factories import TEXTS

pytestmark = pytest.mark.integration

WINDOW = 10
TOPICS = ["AAPL", "TSLA", "BTC"]


def consume(bootstrap: str, topic: str, want: int, timeout: float = 60.0, keys: bool = False) -> list:
    """JSON values (or (key, value) pairs) of ``topic`` from the start, until ``want`` arrived, plus 2 s."""
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=500)
    out: list = []

    def take(batch) -> None:
        out.extend((m.key, orjson.loads(m.value)) if keys else orjson.loads(m.value) for m in batch)

    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                take(batch)
        # a little longer, so duplicates that would follow are seen too
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            for batch in consumer.poll(timeout_ms=300).values():
                take(batch)
    finally:
        consumer.close()
    return out


def make_events(t0: float) -> tuple[list[dict], Counter]:
    """Baseline events spread over four earlier windows; half carry lang, half rely on detection."""
    events, expected = [], Counter()
    i = 0
    for w in range(4, 0, -1):
        for topic in TOPICS:
            for lang, text in TEXTS.items():
                ev = {"id": f"e{i}", "source": "news", "topic": topic, "text": text,
                      "ts": (t0 // WINDOW - w) * WINDOW + 1 + (i % 7)}
                if i % 2 == 0:
                    ev["lang"] = lang
                events.append(ev)
                expected[(topic, lang)] += 1
                i += 1
    return events, expected


INVALID = [
    (b'{"id": "bad-json", "text": ', "not_json"),
    (b'["an", "array"]', "not_object"),
    (b'{"id": "bad-topic", "source": "news", "text": "x", "ts": 1}', "invalid_event"),
    (b'{"id": "bad-empty", "source": "news", "topic": "AAPL", "text": "  ", "ts": 1}', "invalid_event"),
    (b'{"id": "bad-img", "source": "news", "topic": "AAPL", "text": "a", "image_b64": "@@@", "ts": 1}', "invalid_event"),
]


def test_pipeline_end_to_end(world):
    # threshold 2.5: the burst's first judgeable window count (min_count 20, baseline 6) already has
    # a robust z of 5.7 >= 2 * 2.5, so every anomalous verdict is critical however the burst is cut
    # into batches (a warning escalating to critical would be a second alert, by design)
    # alerts nobody observes any more (the burst's topic goes quiet) are resolved by the staleness sweep
    w = world(window_s=WINDOW, spike_history=4, spike_min_history=3, spike_min_count=20, spike_threshold=2.5,
              batch_size=32, alert_keep_firing_for_s=0, alert_stale_after_s=4, alert_sweep_interval_s=1)
    bootstrap = w.stack.bootstrap
    w.start_worker()

    t0 = (time.time() // WINDOW) * WINDOW + WINDOW / 2  # middle of the current window
    events, expected = make_events(t0)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for ev in events:
        producer.send(w.topics["events"], orjson.dumps(ev))
    for raw, _ in INVALID:
        producer.send(w.topics["events"], raw)
    producer.flush()

    scored = consume(bootstrap, w.topics["scored"], len(events))
    assert Counter(s["id"] for s in scored) == Counter(ev["id"] for ev in events), "each valid event scored exactly once"
    by_id = {s["id"]: s for s in scored}
    for ev in events:
        s = by_id[ev["id"]]
        assert abs(sum(s["probabilities"].values()) - 1.0) < 1e-4
        assert s["label"] == max(s["probabilities"], key=s["probabilities"].get)
        assert s["lang_detected"] == ("lang" not in ev)
    # language identification found the language of every event that came without one
    assert Counter((s["topic"], s["lang"]) for s in scored) == expected

    dead = consume(bootstrap, w.topics["deadletter"], len(INVALID))
    assert sorted(d["reason"] for d in dead) == sorted(r for _, r in INVALID)
    assert {d["raw"] for d in dead} == {raw.decode() for raw, _ in INVALID}
    for d in dead:
        assert d["source_topic"] == w.topics["events"] and d["offset"] is not None

    # Redis windows hold exactly what was sent, per (topic, language) and per topic
    r = redis.Redis.from_url(w.stack.redis_url)
    def window_total(topic: str, lang: str) -> int:
        total = 0
        for k in range(1, 5):
            start = int(t0 - k * WINDOW) // WINDOW * WINDOW
            total += int(r.hget(f"{w.prefix}:w:{WINDOW}:{topic}:{lang}:{start}", "count") or 0)
        return total
    for (topic, lang), n in expected.items():
        assert window_total(topic, lang) == n, (topic, lang)
    for topic in TOPICS:
        assert window_total(topic, "*") == sum(n for (t, _), n in expected.items() if t == topic)
    assert consume(bootstrap, w.topics["alerts"], 0, timeout=1) == [], "steady baseline: no alert"

    # burst: 60 events on one topic in the current window -> exactly one alert
    burst = [{"id": f"burst{i}", "source": "social", "topic": "TSLA", "text": TEXTS["en"], "lang": "en",
              "ts": t0} for i in range(60)]
    for ev in burst:
        producer.send(w.topics["events"], orjson.dumps(ev))
    # far older than the topic's watermark allows (lateness 300 s): diverted, never silent
    producer.send(w.topics["events"], orjson.dumps({"id": "late-1", "source": "news", "topic": "BTC",
                                                     "text": TEXTS["en"], "lang": "en", "ts": t0 - 3600}))
    producer.flush()
    producer.close()
    late = consume(bootstrap, w.topics["late"], 1)
    assert [x["id"] for x in late] == ["late-1"]
    assert window_total("BTC", "*") == sum(n for (t, _), n in expected.items() if t == "BTC")
    # two firing alerts, then (the topic went quiet) their two resolved notifications from the sweep
    records = consume(bootstrap, w.topics["alerts"], 4, keys=True)
    for key, event in records:  # CloudEvents 1.0, structured JSON, keyed by the alert's fingerprint
        cloudevents.validate(event)
        assert event["source"] == cloudevents.DEFAULT_SOURCE
        assert key.decode() == event["subject"] == event["data"]["fingerprint"]
    firing = [AlertInstance.model_validate(e["data"]) for _, e in records if e["type"] == "io.babelwatch.alert.firing"]
    resolved = [AlertInstance.model_validate(e["data"]) for _, e in records
                if e["type"] == "io.babelwatch.alert.resolved"]
    assert len(firing) + len(resolved) == len(records) == 4, records
    # one firing alert per burst series: all languages, and English (the burst's only language)
    assert sorted(a.labels["language"] for a in firing) == ["*", "en"], records
    assert sorted(a.fingerprint for a in resolved) == sorted(a.fingerprint for a in firing)
    assert all(a.state == "resolved" and a.resolved_at >= a.fired_at for a in resolved)
    types = [e["type"].rsplit(".", 1)[-1] for _, e in records]
    assert types.index("resolved") > max(i for i, t in enumerate(types) if t == "firing")  # in order
    topic_alerts = [a for a in firing if a.labels["language"] == "*"]
    assert len(topic_alerts) == 1, records
    a = topic_alerts[0]
    assert a.state == "firing" and a.fired_at is not None and a.resolved_at is None
    assert a.labels == {"topic": "TSLA", "language": "*", "detector": "volume_spike", "window": f"{WINDOW}s",
                        "severity": "critical", "stage": "open"}
    ann = a.annotations
    assert ann["value"] >= 20 and ann["baseline"] == 6 and ann["score"] >= 4
    assert ann["window_start"] == int(t0) // WINDOW * WINDOW
    assert set(ann["sample_events"]) <= {ev["id"] for ev in burst}
    scored_all = consume(bootstrap, w.topics["scored"], len(events) + len(burst) + 1)
    assert len(scored_all) == len(events) + len(burst) + 1
    r.close()
