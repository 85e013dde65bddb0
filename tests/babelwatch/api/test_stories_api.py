"""GET /v1/stories and /v1/stories/{id} on a real `babelwatch api` process and the machine's Redis,
with stories written the workers' way (``RedisStories.assign``): list order, language filter and
limit, one story with its representatives per language, 404s, 422s for hostile inputs, tokens."""
from __future__ import annotations

import asyncio
import math
import time

import httpx
import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from bw_api import READ_TOKEN, REDIS_URL, WRITE_TOKEN, api_server, bearer

from contracts.keys import RedisKeys
from workers.stories.items import StoryItem
from workers.stories.redis_store import RedisStories
from workers.stories.rules import StoryRules

pytestmark = pytest.mark.integration

DIM = 384
BASES = np.random.default_rng(5).normal(size=(4, DIM))
T0 = time.time() - 600  # recent event times: the wall clock does not cut them

RECALL = {"en": "Tesla recalls 120,000 cars over a faulty seat belt warning",
          "de": "Tesla ruft 120.000 Autos wegen einer fehlerhaften Gurtwarnung zurück",
          "ja": "テスラ、シートベルト警告の不具合で12万台をリコール"}


def item(n: int, story: int, lang: str, text: str, ts: float, topic: str = "TSLA",
         sentiment: float = -0.5) -> StoryItem:
    emb = BASES[story] + 0.2 * np.random.default_rng(n).normal(size=DIM) * math.sqrt(DIM) / 10
    return StoryItem(topic, ("events#id:0", n), f"{topic}-e{n}", lang, text, sentiment, emb, ts,
                     f"https://news.example/{n}")


def write(prefix: str, items: list[StoryItem]) -> list[str | None]:
    async def go():
        r = aioredis.Redis.from_url(REDIS_URL)
        try:
            return await RedisStories(r, prefix, StoryRules(threshold=0.3)).assign(items)
        finally:
            await r.aclose()
    return asyncio.run(go())


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with api_server(tmp_path_factory.mktemp("api-stories")) as s:
        # story A: a recall in three languages; story B later, English only, positive; one in AAPL
        recall = [item(i, 0, lang, f"{RECALL[lang]} ({i})", T0 + i) for i, lang in enumerate(["en", "de", "ja"] * 2)]
        ids_a = write(s.prefix, recall)
        ids_b = write(s.prefix, [item(10 + i, 1, "en", f"Tesla opens a new factory ({i})", T0 + 100 + i, sentiment=0.6)
                                 for i in range(2)])
        ids_c = write(s.prefix, [item(20, 2, "en", "Apple ships a phone", T0 + 50, topic="AAPL")])
        assert len(set(ids_a)) == 1 and len(set(ids_b)) == 1 and None not in ids_a + ids_b + ids_c
        assert len({ids_a[0], ids_b[0]}) == 2
        s.ids = {"A": ids_a[0], "B": ids_b[0], "C": ids_c[0]}
        yield s


def client(srv, token: str | None = READ_TOKEN) -> httpx.Client:
    return httpx.Client(base_url=srv.base, timeout=10, headers=bearer(token) if token else {})


def test_list_newest_first_with_languages_and_representatives(srv):
    with client(srv) as c:
        r = c.get("/v1/stories", params={"topic": "TSLA"})
        assert r.status_code == 200, r.text
        got = r.json()
    assert [s["id"] for s in got] == [srv.ids["B"], srv.ids["A"]]
    a = got[1]
    assert a["topic"] == "TSLA" and a["count"] == 6
    assert sorted(a["languages"]) == ["de", "en", "ja"] and a["counts"] == {"en": 2, "de": 2, "ja": 2}
    assert a["sentiment"] == {"en": -0.5, "de": -0.5, "ja": -0.5}
    assert a["first_seen"] == pytest.approx(T0) and a["last_seen"] == pytest.approx(T0 + 5)
    assert a["rate_per_min"] > 0
    for lang, rep in a["representatives"].items():
        assert rep["lang"] == lang and rep["text"].startswith(RECALL[lang])
        assert rep["link"].startswith("https://news.example/") and rep["id"].startswith("TSLA-e")
    assert got[0]["sentiment"] == {"en": 0.6} and list(got[0]["representatives"]) == ["en"]


def test_list_order_language_filter_and_limit(srv):
    with client(srv) as c:
        def ids(**params):
            r = c.get("/v1/stories", params={"topic": "TSLA", **params})
            assert r.status_code == 200, r.text
            return [s["id"] for s in r.json()]

        assert ids(order="size") == [srv.ids["A"], srv.ids["B"]]
        assert ids(lang="ja") == [srv.ids["A"]]
        assert ids(lang="fr") == []
        assert ids(limit=1) == [srv.ids["B"]]
        assert ids(limit=100, order="growth") and len(ids(order="growth")) == 2
        assert c.get("/v1/stories", params={"topic": "AAPL"}).json()[0]["id"] == srv.ids["C"]
        assert c.get("/v1/stories", params={"topic": "NOPE"}).json() == []


def test_one_story_by_id(srv):
    with client(srv) as c:
        listed = c.get("/v1/stories", params={"topic": "TSLA"}).json()[1]
        r = c.get(f"/v1/stories/{srv.ids['A']}", params={"topic": "TSLA"})
        assert r.status_code == 200 and r.json() == listed
        # without a topic: looked up in the topics the windows know (the worker writes both)
        assert c.get(f"/v1/stories/{srv.ids['A']}").status_code == 404
        red = redis.Redis.from_url(REDIS_URL)
        red.sadd(RedisKeys(srv.prefix).topics, "AAPL", "TSLA", "ZZZ")
        red.close()
        assert c.get(f"/v1/stories/{srv.ids['A']}").json() == listed
        assert c.get(f"/v1/stories/{srv.ids['C']}").json()["topic"] == "AAPL"


@pytest.mark.parametrize("path,params", [
    ("/v1/stories/0123456789abcdef", {}),  # well formed, never written
    ("/v1/stories/0123456789abcdef", {"topic": "TSLA"}),
    ("/v1/stories/{C}", {"topic": "TSLA"}),  # another topic's story
])
def test_unknown_story_is_404(srv, path, params):
    with client(srv) as c:
        r = c.get(path.format(**srv.ids), params=params)
    assert r.status_code == 404 and "no such active story" in r.json()["detail"]


@pytest.mark.parametrize("path,params,where", [
    ("/v1/stories", {}, "topic"),
    ("/v1/stories", {"topic": ""}, "topic"),
    ("/v1/stories", {"topic": "T" * 201}, "topic"),
    ("/v1/stories", {"topic": "TS\x00LA"}, "topic"),
    ("/v1/stories", {"topic": "TS\nLA"}, "topic"),
    ("/v1/stories", {"topic": "TSLA", "limit": 0}, "limit"),
    ("/v1/stories", {"topic": "TSLA", "limit": 101}, "limit"),
    ("/v1/stories", {"topic": "TSLA", "limit": -1}, "limit"),
    ("/v1/stories", {"topic": "TSLA", "limit": "1e9"}, "limit"),
    ("/v1/stories", {"topic": "TSLA", "lang": "EN"}, "lang"),
    ("/v1/stories", {"topic": "TSLA", "lang": "e"}, "lang"),
    ("/v1/stories", {"topic": "TSLA", "lang": "en:x"}, "lang"),
    ("/v1/stories", {"topic": "TSLA", "order": "random"}, "order"),
    ("/v1/stories/ABCDEF0123456789", {}, "story_id"),
    ("/v1/stories/0123456789abcde", {}, "story_id"),
    ("/v1/stories/0123456789abcdef0", {}, "story_id"),
    ("/v1/stories/0123456789abcde%00", {}, "story_id"),
    ("/v1/stories/%E2%80%AE123456789abcdef", {}, "story_id"),
    ("/v1/stories/0123456789abcdef", {"topic": "x\x7f"}, "topic"),
])
def test_hostile_inputs_are_422_each_alone(srv, path, params, where):
    with client(srv) as c:
        r = c.get(path, params=params)
        assert r.status_code == 422, (path, params, r.status_code, r.text)
        assert [d["loc"][-1] for d in r.json()["detail"]] == [where]
        # the next request is served as usual
        assert c.get("/v1/stories", params={"topic": "TSLA", "limit": 1}).status_code == 200


@pytest.mark.parametrize("topic", ["TS*LA", "TSLA:meta", "bw:st:TSLA", "💥" * 200, "Tesla, Inc. (NASDAQ)", "%00"])
def test_odd_but_valid_topics_answer_empty(srv, topic):
    with client(srv) as c:
        r = c.get("/v1/stories", params={"topic": topic})
        assert r.status_code == 200 and r.json() == []
        assert c.get(f"/v1/stories/{srv.ids['A']}", params={"topic": topic}).status_code == 404


def test_a_token_is_required_and_read_scope_is_enough(srv):
    paths = ["/v1/stories?topic=TSLA", f"/v1/stories/{srv.ids['A']}?topic=TSLA"]
    for path in paths:
        with client(srv, token=None) as c:
            r = c.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            assert "representatives" not in r.text
        with client(srv, token="not-a-known-token-0123456789") as c:
            assert c.get(path).status_code == 401
        for token in (READ_TOKEN, WRITE_TOKEN):
            with client(srv, token) as c:
                assert c.get(path).status_code == 200
        with client(srv) as c:
            assert c.post(path).status_code in (403, 405)  # a read token may not write; no write route anyway
    assert READ_TOKEN not in srv.log_text() and WRITE_TOKEN not in srv.log_text()


def test_documented_in_openapi(srv):
    doc = httpx.get(srv.base + "/openapi.json", timeout=10).json()
    listing, one = doc["paths"]["/v1/stories"]["get"], doc["paths"]["/v1/stories/{story_id}"]["get"]
    assert {"401", "403", "422"} <= set(listing["responses"]) and "404" in one["responses"]
    params = {p["name"]: p["schema"] for p in listing["parameters"]}
    assert params["limit"]["maximum"] == 100 and params["limit"]["minimum"] == 1
    assert "representatives" in doc["components"]["schemas"]["Story"]["properties"]
