"""The HTTP API served by a real uvicorn server on a free port, reading the real Redis."""
from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from bw_factories import make_scored

from babelwatch.api.app import create_app
from babelwatch.localstack import free_port
from contracts.settings import Settings
from workers.alerting.lifecycle import AlertLifecycle, Timing
from workers.alerting.sinks.sse import SseBroadcaster
from workers.alerting.state_store import RedisAlertStateStore
from workers.alerts import AlertEvaluator, WindowVerdict
from workers.detectors.base import Verdict
from workers.windows import WindowSpec, WindowStore

pytestmark = pytest.mark.integration

AUTH = {"Authorization": "Bearer s3cret-token"}  # reads need the token too


@contextmanager
def serve(settings: Settings, notifier=None):
    """The app on a real uvicorn server in a thread; stopped on exit."""
    server = uvicorn.Server(uvicorn.Config(create_app(settings, notifier=notifier), host="127.0.0.1",
                                           port=settings.api_port, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        yield f"http://127.0.0.1:{settings.api_port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def api():
    prefix = f"bwtest-api-{uuid.uuid4().hex[:8]}"
    settings = Settings(redis_prefix=prefix, window_s=10, extra_windows="30/10", api_port=free_port(),
                        api_token="s3cret-token")
    with serve(settings) as base:
        yield settings, base
    import redis

    r = redis.Redis.from_url(settings.redis_url)
    keys = list(r.scan_iter(f"{prefix}:*"))
    if keys:
        r.delete(*keys)
    r.close()


async def seed(settings: Settings) -> None:
    r = aioredis.from_url(settings.redis_url)
    store = WindowStore(r, 10, 10, settings.redis_prefix, extra=[WindowSpec.parse("30/10")])
    await store.apply_batch([make_scored("TSLA", "en", "negative", 1000.0 + i) for i in range(12)]
                            + [make_scored("TSLA", "de", "positive", 1015.0)])
    window = (await store.apply_batch([make_scored("TSLA", "en", "negative", 1019.0)])).open[0]
    alerts = AlertEvaluator(AlertLifecycle(RedisAlertStateStore(r, settings.redis_prefix), Timing(0.0, 0.0, 300.0)))
    spike = Verdict("volume_spike", 9.0, 4.0, 5.0, 1.0, True, "spike")
    calm = Verdict("volume_spike", 1.0, 4.0, 1.0, 1.0, False, "calm")
    # TSLA/en fires and stays firing; TSLA/* fires and resolves
    await alerts.evaluate([WindowVerdict("TSLA", "en", 10, window.start, spike),
                           WindowVerdict("TSLA", "*", 10, window.start, spike)], now=1020.0)
    await alerts.evaluate([WindowVerdict("TSLA", "*", 10, window.start + 10, calm)], now=1030.0)
    await r.aclose()


async def test_trends_topics_alerts_and_health(api):
    settings, base = api
    await seed(settings)
    async with httpx.AsyncClient(base_url=base, timeout=5, headers=AUTH) as c:
        assert (await c.get("/health")).json() == {"status": "ok"}
        assert (await c.get("/ready")).status_code == 200
        assert (await c.get("/v1/topics")).json() == [{"topic": "TSLA", "languages": ["*", "de", "en"]}]
        body = (await c.get("/v1/trends", params={"topic": "TSLA", "points": 3, "end": 1025})).json()
        assert body["window"] == "10"
        assert [(p["start"], p["count"]) for p in body["points"]] == [(1000, 10), (1010, 4), (1020, 0)]
        assert body["points"][0]["sentiment_mean"] < 0 and body["points"][2]["sentiment_mean"] is None
        de = (await c.get("/v1/trends", params={"topic": "TSLA", "lang": "de", "points": 2, "end": 1015})).json()
        assert [p["count"] for p in de["points"]] == [0, 1]
        hop = (await c.get("/v1/trends", params={"topic": "TSLA", "window": "30/10", "points": 1, "end": 1000})).json()
        assert hop["points"][0]["count"] == 14  # [1000, 1030) holds everything
        alerts = (await c.get("/v1/alerts", params={"topic": "TSLA"})).json()  # newest first
        assert [(a["state"], a["labels"]["language"]) for a in alerts] == [("resolved", "*"), ("firing", "*"),
                                                                           ("firing", "en")]
        assert all(a["labels"]["detector"] == "volume_spike" and len(a["fingerprint"]) == 16 for a in alerts)
        assert alerts[2]["annotations"]["summary"] == "spike" and alerts[2]["fired_at"] == 1020.0
        assert len((await c.get("/v1/alerts", params={"limit": 1})).json()) == 1
        assert (await c.get("/v1/alerts", params={"topic": "AAPL"})).json() == []
        active = (await c.get("/v1/alerts/active")).json()
        assert [(a["state"], a["labels"]["topic"], a["labels"]["language"]) for a in active] == [("firing", "TSLA", "en")]
        assert (await c.get("/v1/alerts/active", params={"topic": "AAPL"})).json() == []
        assert (await c.get("/v1/alerts/active", params={"state": "pending"})).json() == []
        # the live stream lives in the notifier's process: not here (404, and not in this OpenAPI document)
        r = await c.get("/v1/alerts/stream")
        assert r.status_code == 404 and "babelwatch notify" in r.json()["detail"]


async def test_bad_queries_get_clear_4xx(api):
    _, base = api
    async with httpx.AsyncClient(base_url=base, timeout=5, headers=AUTH) as c:
        assert (await c.get("/v1/trends")).status_code == 422  # topic missing
        assert (await c.get("/v1/trends", params={"topic": "X", "points": 0})).status_code == 422
        r = await c.get("/v1/trends", params={"topic": "X", "window": "3600"})
        assert r.status_code == 404 and "not kept" in r.json()["detail"]
        r = await c.get("/v1/trends", params={"topic": "X", "window": "300/70"})
        assert r.status_code == 422


async def test_openapi_document_lists_the_endpoints(api):
    _, base = api
    async with httpx.AsyncClient(base_url=base, timeout=5) as c:
        doc = (await c.get("/openapi.json")).json()
    assert {"/health", "/ready", "/v1/topics", "/v1/trends", "/v1/alerts", "/v1/alerts/active",
            "/v1/subscriptions", "/v1/silences"} <= set(doc["paths"])
    assert "/v1/alerts/stream" not in doc["paths"]  # served (and documented) by `babelwatch notify` only
    with_stream = create_app(Settings(), notifier=StubNotifier()).openapi()
    assert "/v1/alerts/stream" in with_stream["paths"]


async def test_subscriptions_and_silences_crud_with_bearer_auth(api):
    _, base = api
    route = {"id": "desk-tsla", "matchers": [{"name": "topic", "op": "=", "value": "TSLA"},
                                             {"name": "severity", "op": "=~", "value": "warning|critical"}],
             "group_by": ["topic"], "receivers": [{"type": "webhook", "url": "https://hooks.example.com/bw",
                                                   "secret_ref": "env:BABELWATCH_HOOK_DESK"}]}
    auth = {"Authorization": "Bearer s3cret-token"}
    async with httpx.AsyncClient(base_url=base, timeout=5) as c:
        assert (await c.post("/v1/subscriptions", json=route)).status_code == 401
        assert (await c.post("/v1/subscriptions", json=route, headers={"Authorization": "Bearer nope"})).status_code == 401
        created = await c.post("/v1/subscriptions", json=route, headers=auth)
        assert created.status_code == 201, created.text
        assert (await c.post("/v1/subscriptions", json=route, headers=auth)).status_code == 409
        listed = (await c.get("/v1/subscriptions", headers=auth)).json()
        assert [r["id"] for r in listed] == ["desk-tsla"]
        assert listed[0]["receivers"][0]["name"] == "webhook-0"
        bad = await c.post("/v1/subscriptions", headers=auth, json={**route, "id": "x2", "receivers": []})
        assert bad.status_code == 422
        bad = await c.post("/v1/subscriptions", headers=auth,
                           json={**route, "id": "x3", "matchers": [{"name": "topic", "op": "~~", "value": "A"}]})
        assert bad.status_code == 422
        changed = {**route, "group_by": ["topic", "lang"]}
        assert (await c.put("/v1/subscriptions/desk-tsla", json=changed, headers=auth)).json()["group_by"] == ["topic", "lang"]
        assert (await c.put("/v1/subscriptions/other", json=changed, headers=auth)).status_code == 422

        now = time.time()
        silence = {"matchers": [{"name": "topic", "op": "=", "value": "TSLA"}], "starts_at": now - 1,
                   "ends_at": now + 3600, "created_by": "ops@desk", "comment": "earnings call"}
        assert (await c.post("/v1/silences", json=silence)).status_code == 401
        s = await c.post("/v1/silences", json=silence, headers=auth)
        assert s.status_code == 201
        sid = s.json()["id"]
        assert [x["id"] for x in (await c.get("/v1/silences", params={"state": "active"}, headers=auth)).json()] == [sid]
        bad = await c.post("/v1/silences", headers=auth, json={**silence, "ends_at": now - 10})
        assert bad.status_code == 422
        assert (await c.delete(f"/v1/silences/{sid}", headers=auth)).status_code == 200
        assert (await c.get("/v1/silences", params={"state": "active"}, headers=auth)).json() == []
        assert (await c.delete("/v1/subscriptions/desk-tsla", headers=auth)).status_code == 204
        assert (await c.get("/v1/subscriptions/desk-tsla", headers=auth)).status_code == 404


async def test_writes_are_refused_when_no_token_is_configured():
    settings = Settings(redis_prefix=f"bwtest-api-{uuid.uuid4().hex[:8]}", api_port=free_port())
    with serve(settings) as base:
        async with httpx.AsyncClient(base_url=base, timeout=5) as c:
            r = await c.post("/v1/silences", json={}, headers={"Authorization": "Bearer anything"})
            assert r.status_code == 403 and "BABELWATCH_API_TOKEN" in r.json()["detail"]


class StubNotifier:
    """What the app needs from a hosted notifier: a broadcaster, started and stopped with the app."""

    def __init__(self) -> None:
        self.broadcaster = SseBroadcaster(maxlen=10)
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True
        await self.broadcaster.stop()


async def test_live_stream_serves_the_hosted_notifiers_broadcaster():
    notifier = StubNotifier()
    settings = Settings(redis_prefix=f"bwtest-api-{uuid.uuid4().hex[:8]}", api_port=free_port(),
                        api_token="s3cret-token")
    with serve(settings, notifier=notifier) as base:
        assert notifier.started
        async with httpx.AsyncClient(base_url=base, timeout=5, headers=AUTH) as c:
            async with c.stream("GET", "/v1/alerts/stream") as resp:
                assert resp.status_code == 200
                assert resp.headers["content-type"].startswith("text/event-stream")
                lines = resp.aiter_lines()
                assert await anext(lines) == "retry: 3000"
                deadline = time.monotonic() + 5
                while notifier.broadcaster.subscribers == 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                notifier.broadcaster.publish("desk", "io.babelwatch.alertgroup.firing", '{"n":0}', "g0")  # other channel
                notifier.broadcaster.publish("alerts", "io.babelwatch.alert.firing", '{"n":1}', "e1")
                got = []
                while len(got) < 3:
                    line = await asyncio.wait_for(anext(lines), 5)
                    if line:
                        got.append(line)
                assert got == ["id: e1", "event: io.babelwatch.alert.firing", 'data: {"n":1}']
    assert notifier.stopped
