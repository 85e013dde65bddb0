"""Subscriptions end to end: real broker, Redis, Triton, a `babelwatch worker` and `babelwatch notify`
(the notifier with the HTTP API), and real local HTTP webhook receivers.

Two subscriptions are created through the HTTP API (topic TSLA, topic AAPL) and a silence (language
en); then a burst on TSLA. The TSLA subscriber must receive exactly one firing notification, signed
(HMAC-SHA256), holding exactly the all-language alert (the English one is silenced); the AAPL
subscriber nothing. When the next window is calm, the TSLA subscriber gets exactly one resolved
notification. The live SSE stream of the notifier's process sees the alerts as they happen.
"""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import orjson
import pytest
from bw_http import LocalReceiver
from kafka import KafkaConsumer, KafkaProducer

from workers.alerting import cloudevents
from workers.alerting.sinks.webhook import EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature

pytestmark = pytest.mark.integration

WINDOW = 10
TOKEN = "e2e-writer-token"
SECRET = "tsla-desk-shared-secret"
LANGS = ["en", "de", "fr", "es", "zh", "ja"]
TEXT = "Shares moved after the company reported quarterly results"


def count_records(bootstrap: str, topic: str, want: int, timeout: float = 60.0) -> int:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    n, deadline = 0, time.monotonic() + timeout
    try:
        while n < want and time.monotonic() < deadline:
            n += sum(len(b) for b in consumer.poll(timeout_ms=300).values())
    finally:
        consumer.close()
    return n


def produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for ev in events:
        producer.send(topic, orjson.dumps(ev))
    producer.flush()
    producer.close()


def headers_of(seen) -> dict[str, str]:
    return {k.lower(): v for k, v in seen.headers.items()}


def webhook_route(route_id: str, topic: str, url: str, secret_ref: str | None = None) -> dict:
    hook = {"type": "webhook", "name": f"{route_id}-hook", "url": url, "retries": 2, "backoff_s": 0.1,
            "timeout_s": 5}
    if secret_ref:
        hook["secret_ref"] = secret_ref
    return {"id": route_id, "matchers": [{"name": "topic", "op": "=", "value": topic}], "group_by": ["topic"],
            "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h", "receivers": [hook]}


async def read_sse(url: str, out: list[dict], ready: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=None),
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as c:  # reads need the token
        async with c.stream("GET", url + "/v1/alerts/stream", params={"heartbeat_s": 1}) as resp:
            assert resp.status_code == 200
            ready.set()
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    out.append(json.loads(line[len("data: "):]))


async def test_subscribers_receive_exactly_their_alerts_once(world):
    w = world(window_s=WINDOW, spike_history=4, spike_min_history=3, spike_min_count=20, spike_threshold=2.5,
              batch_size=32, alert_keep_firing_for_s=0, alerting_allow_private=True, api_token=TOKEN)
    bootstrap = w.stack.bootstrap
    tsla, aapl = await LocalReceiver().start(), await LocalReceiver().start()
    sse_task = None
    try:
        notifier = w.launch_notifier(BABELWATCH_SECRET_TSLA_DESK=SECRET)
        await asyncio.to_thread(w.start_worker)
        await asyncio.to_thread(notifier.wait_ready)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=notifier.url, timeout=10, headers=auth) as api:
            for route in (webhook_route("tsla-desk", "TSLA", tsla.url("/tsla"), "env:BABELWATCH_SECRET_TSLA_DESK"),
                          webhook_route("aapl-desk", "AAPL", aapl.url("/aapl"))):
                created = await api.post("/v1/subscriptions", json=route, headers=auth)
                assert created.status_code == 201, created.text
            now = time.time()
            silence = {"matchers": [{"name": "language", "op": "=", "value": "en"}], "starts_at": now - 1,
                       "ends_at": now + 3600, "created_by": "e2e", "comment": "English burst is known"}
            assert (await api.post("/v1/silences", json=silence, headers=auth)).status_code == 201
            assert len((await api.get("/v1/subscriptions")).json()) == 2

            sse: list[dict] = []
            sse_ready = asyncio.Event()
            sse_task = asyncio.create_task(read_sse(notifier.url, sse, sse_ready))
            await asyncio.wait_for(sse_ready.wait(), 10)

            # baseline: one event per topic and language in each of four earlier windows
            t0 = (time.time() // WINDOW) * WINDOW + WINDOW / 2
            base = [{"id": f"b{k}-{t}-{lang}", "source": "news", "topic": t, "text": TEXT, "lang": lang,
                     "ts": (t0 // WINDOW - k) * WINDOW + 1} for k in range(4, 0, -1)
                    for t in ("TSLA", "AAPL") for lang in LANGS]
            await asyncio.to_thread(produce, bootstrap, w.topics["events"], base)
            assert await asyncio.to_thread(count_records, bootstrap, w.topics["scored"], len(base)) == len(base)
            await asyncio.sleep(2.5)  # > the router's config refresh: subscriptions and silence are loaded

            # the burst: 60 English events about TSLA in the current window
            burst = [{"id": f"burst{i}", "source": "social", "topic": "TSLA", "text": TEXT, "lang": "en",
                      "ts": t0} for i in range(60)]
            await asyncio.to_thread(produce, bootstrap, w.topics["events"], burst)
            await tsla.wait_requests(1, timeout=45)
            assert len(tsla.requests) == 1, "the TSLA subscriber was not notified"
            await asyncio.sleep(4)  # > group_interval: a duplicate or a late extra would be here by now
            assert len(tsla.requests) == 1, [r.body[:300] for r in tsla.requests]
            assert aapl.requests == []

            fired = tsla.requests[0]
            h = headers_of(fired)
            assert fired.method == "POST" and fired.path == "/tsla"
            assert h["content-type"].startswith("application/cloudevents+json")
            assert verify_signature(SECRET.encode(), fired.body, h[TIMESTAMP_HEADER.lower()],
                                    h[SIGNATURE_HEADER.lower()])
            assert not verify_signature(b"another secret", fired.body, h[TIMESTAMP_HEADER.lower()],
                                        h[SIGNATURE_HEADER.lower()])
            event = json.loads(fired.body)
            cloudevents.validate(event)
            assert event["type"] == "io.babelwatch.alertgroup.firing" and h[EVENT_ID_HEADER.lower()] == event["id"]
            body = event["data"]
            assert body["status"] == "firing" and body["routeId"] == "tsla-desk"
            assert body["groupLabels"] == {"topic": "TSLA"}
            assert [(a["status"], a["labels"]) for a in body["alerts"]] == [("firing", {
                "topic": "TSLA", "language": "*", "detector": "volume_spike", "window": f"{WINDOW}s",
                "severity": "critical", "stage": "open"})]  # the English alert is silenced
            star_fp = body["alerts"][0]["fingerprint"]

            active = (await api.get("/v1/alerts/active", params={"topic": "TSLA"})).json()
            assert sorted(a["labels"]["language"] for a in active) == ["*", "en"]
            # the live stream saw both alerts, before subscriptions and silences
            assert sorted((e["type"], e["data"]["labels"]["language"]) for e in sse) == [
                ("io.babelwatch.alert.firing", "*"), ("io.babelwatch.alert.firing", "en")]

            # the next window (event time) is calm: the alert resolves, its subscriber hears it once
            calm = [{"id": f"calm{i}", "source": "news", "topic": "TSLA", "text": TEXT, "lang": "en",
                     "ts": t0 + WINDOW} for i in range(2)]
            await asyncio.to_thread(produce, bootstrap, w.topics["events"], calm)
            await tsla.wait_requests(2, timeout=30)
            await asyncio.sleep(3)
            assert len(tsla.requests) == 2, [r.body[:300] for r in tsla.requests]
            assert aapl.requests == []
            resolved = json.loads(tsla.requests[1].body)
            assert resolved["type"] == "io.babelwatch.alertgroup.resolved"
            assert [(a["status"], a["fingerprint"]) for a in resolved["data"]["alerts"]] == [("resolved", star_fp)]
            assert (await api.get("/v1/alerts/active", params={"topic": "TSLA"})).json() == []
            history = (await api.get("/v1/alerts", params={"topic": "TSLA"})).json()
            assert sorted(a["state"] for a in history) == ["firing", "firing", "resolved", "resolved"]
    finally:
        if sse_task is not None:
            sse_task.cancel()
            await asyncio.gather(sse_task, return_exceptions=True)
        await tsla.stop()
        await aapl.stop()
