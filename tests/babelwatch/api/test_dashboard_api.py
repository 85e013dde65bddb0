"""The dashboard's side of the API on a real `babelwatch api` process and the machine's Redis: the
page and its files open (and nothing else through them), /docs offline, /v1/overview from the
windows in Redis, /v1/samples only where the notifier runs, CORS closed by default and open only to
the configured origins."""
from __future__ import annotations

import re
import time

import httpx
import pytest
import redis
from bw_api import READ_TOKEN, REDIS_URL, WRITE_TOKEN, api_server, bearer

from contracts.keys import RedisKeys

pytestmark = pytest.mark.integration

ORIGIN = "https://ops.example.com"


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    origins = f"{ORIGIN}, https://b.example"
    with api_server(tmp_path_factory.mktemp("api-dash"), BABELWATCH_API_CORS_ORIGINS=origins) as s:
        yield s


def anon(srv) -> httpx.Client:
    return httpx.Client(base_url=srv.base, timeout=10)


def test_page_and_files_need_no_token_and_load_nothing_from_elsewhere(srv):
    with anon(srv) as c:
        page = c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert refs and all(r.startswith(("/", "#", "data:")) for r in refs), refs
        for path in ("/static/app.js", "/static/app.css"):
            r = c.get(path)
            assert r.status_code == 200 and len(r.content) > 1000
            text = r.text.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace name, not a fetch
            assert "http://" not in text and "https://" not in text  # nothing fetched from elsewhere
        assert c.head("/").status_code == 200


@pytest.mark.parametrize("path", ["/static/../api/app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                                  "/static/nope.js", "/docs/assets/../../v1/topics", "/favicon.ico"])
def test_open_prefixes_open_nothing_else(srv, path):
    with anon(srv) as c:
        r = c.get(path)
        assert r.status_code in (401, 404), (path, r.status_code)
        assert "import" not in r.text


def test_docs_work_offline(srv):
    with anon(srv) as c:
        docs = c.get("/docs")
        assert docs.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in docs.text
        assert "cdn" not in docs.text.lower() and "https://" not in docs.text.replace("https://fastapi", "")
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            assert c.get(f"/docs/assets/{asset}").status_code == 200
        assert c.get("/redoc").status_code in (401, 404)  # ReDoc would load from a CDN: not served


def test_overview_reads_the_windows(srv):
    keys = RedisKeys(srv.prefix)
    r = redis.Redis.from_url(REDIS_URL)
    now = int(time.time() // 60 * 60)
    r.sadd(keys.topics, "TSLA")
    r.sadd(keys.langs("TSLA"), "en", "*")
    r.hset(keys.window("60", "TSLA", "en", now), mapping={"count": 4, "sentiment_sum": -2.0})
    r.hset(keys.window("60", "TSLA", "*", now), mapping={"count": 6, "sentiment_sum": -1.5})
    r.hset(keys.window("60", "TSLA", "en", now - 120), mapping={"count": 1, "sentiment_sum": 1.0})
    r.hset(keys.stats, mapping={"late": 3, "redelivered_skipped": 1})
    r.close()
    with anon(srv) as c:
        assert c.get("/v1/overview").status_code == 401
    with httpx.Client(base_url=srv.base, timeout=10, headers=bearer(READ_TOKEN)) as c:
        ov = c.get("/v1/overview", params={"points": 5}).json()
        assert ov["window"] == "60" and ov["windows"][0] == "60"
        assert ov["stats"] == {"late": 3, "redelivered_skipped": 1} and ov["dead_letters"] is None
        by = {(s["topic"], s["lang"]): s["points"] for s in ov["series"]}
        assert set(by) == {("TSLA", "en"), ("TSLA", "*")}
        en = by[("TSLA", "en")]
        assert len(en) == 5 and en[-1] == {"start": now, "count": 4, "sentiment_mean": -0.5}
        assert en[-3] == {"start": now - 120, "count": 1, "sentiment_mean": 1.0}
        assert en[-2]["count"] == 0 and en[-2]["sentiment_mean"] is None
        one = c.get("/v1/overview", params={"points": 2, "max_series": 1}).json()
        assert len(one["series"]) == 1  # capped
        assert c.get("/v1/overview", params={"window": "7"}).status_code == 404
        assert c.get("/v1/overview", params={"window": "abc"}).status_code == 422
        assert c.get("/v1/overview", params={"points": 100000}).status_code == 422
        # the recent events live in `babelwatch notify`, not here
        assert c.get("/v1/samples", params={"id": "x"}).status_code == 404
        assert c.get("/v1/samples", params={"id": [str(i) for i in range(21)]}).status_code == 422


def test_cors_only_for_configured_origins(srv):
    pre = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    with anon(srv) as c:
        ok = c.options("/v1/topics", headers={"Origin": ORIGIN, **pre})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        evil = c.options("/v1/topics", headers={"Origin": "https://evil.example", **pre})
        assert "access-control-allow-origin" not in evil.headers
        got = c.get("/v1/topics", headers={"Origin": ORIGIN, **bearer(WRITE_TOKEN)})
        assert got.status_code == 200 and got.headers["access-control-allow-origin"] == ORIGIN
        # CORS opens no door: without a token it is still 401
        assert c.get("/v1/topics", headers={"Origin": ORIGIN}).status_code == 401


def test_cors_closed_by_default(tmp_path):
    with api_server(tmp_path) as plain, anon(plain) as c:
        r = c.options("/v1/topics", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in r.headers
        r = c.get("/v1/topics", headers={"Origin": ORIGIN, **bearer(WRITE_TOKEN)})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
