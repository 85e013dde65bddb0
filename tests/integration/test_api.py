"""The HTTP API served by a real uvicorn server on a free port, reading the real Redis."""
from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis
import uvicorn
from bw_factories import make_scored

from babelwatch.api.app import create_app
from babelwatch.localstack import free_port
from babelwatch.settings import Settings
from workers.alerts import AlertGate, build_alert
from workers.detectors.base import Verdict
from workers.windows import WindowSpec, WindowStore

pytestmark = pytest.mark.integration


@pytest.fixture
def api():
    prefix = f"bwtest-api-{uuid.uuid4().hex[:8]}"
    settings = Settings(redis_prefix=prefix, window_s=10, extra_windows="30/10", api_port=free_port())
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=settings.api_port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield settings, f"http://127.0.0.1:{settings.api_port}"
    server.should_exit = True
    thread.join(10)
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
    await AlertGate(r, settings.redis_prefix).admit(
        [build_alert(window, Verdict("volume_spike", 9.0, 4.0, 5.0, 1.0, True, "spike"), now=1020.0)])
    await r.aclose()


async def test_trends_topics_alerts_and_health(api):
    settings, base = api
    await seed(settings)
    async with httpx.AsyncClient(base_url=base, timeout=5) as c:
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
        alerts = (await c.get("/v1/alerts", params={"topic": "TSLA"})).json()
        assert len(alerts) == 1 and alerts[0]["detector"] == "volume_spike"
        assert (await c.get("/v1/alerts", params={"topic": "AAPL"})).json() == []


async def test_bad_queries_get_clear_4xx(api):
    _, base = api
    async with httpx.AsyncClient(base_url=base, timeout=5) as c:
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
    assert {"/health", "/ready", "/v1/topics", "/v1/trends", "/v1/alerts"} <= set(doc["paths"])
