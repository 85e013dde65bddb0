"""The dashboard's stories view in a real browser (Debian chromium + chromedriver, Selenium) against a
plain `babelwatch api` and the machine's Redis: stories written the workers' way (``RedisStories``)
appear for the chosen topic with their languages, sentiment per language and representative texts
side by side; a story written while the page is open appears at the next refresh; a hostile text
stays text; links are only web links; no console errors, every text readable (contrast)."""
from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from bw_api import READ_TOKEN, REDIS_URL, api_server
from bw_browser import chromium, console_errors, low_contrast
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from contracts.keys import RedisKeys
from workers.stories.items import StoryItem
from workers.stories.redis_store import RedisStories
from workers.stories.rules import StoryRules

pytestmark = pytest.mark.integration

DIM = 384
BASES = np.random.default_rng(7).normal(size=(3, DIM))
EN = "Tesla recalls 120,000 cars over a faulty seat belt warning"
DE = "Tesla ruft 120.000 Autos wegen einer fehlerhaften Gurtwarnung zurück"
HOSTILE = "<img src=x onerror=\"window.__xss=1\"> Tesla factory opens in Berlin"

STORIES_JS = """
return [...document.querySelectorAll('#stories article.story')].map((a) => ({
  id: a.dataset.story, title: a.querySelector('h3').innerText,
  bars: [...a.querySelectorAll('svg.sentiment rect')].map((r) => r.dataset.lang),
  label: a.querySelector('svg.sentiment').getAttribute('aria-label'),
  reps: [...a.querySelectorAll('.reps li')].map((li) => ({lang: li.dataset.lang,
    text: li.querySelector('.text').innerText, textLang: li.querySelector('.text').getAttribute('lang'),
    href: li.querySelector('a') ? li.querySelector('a').getAttribute('href') : null}))}));
"""


def item(n: int, story: int, lang: str, text: str, ts: float, sentiment: float, link: str) -> StoryItem:
    emb = BASES[story] + 0.2 * np.random.default_rng(n).normal(size=DIM) * math.sqrt(DIM) / 10
    return StoryItem("TSLA", ("events#id:0", n), f"ev-{n}", lang, text, sentiment, emb, ts, link)


def write(prefix: str, items: list[StoryItem]) -> list[str | None]:
    async def go():
        r = aioredis.Redis.from_url(REDIS_URL)
        try:
            return await RedisStories(r, prefix, StoryRules(threshold=0.3)).assign(items)
        finally:
            await r.aclose()
    return asyncio.run(go())


def wait(driver, cond, timeout: float, what: str):
    # the page redraws its panels every 2 s: an element found a moment ago may be gone, try again
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,)).until(cond, message=what)


def shown(driver, sid: str) -> dict | None:
    return next((s for s in driver.execute_script(STORIES_JS) if s["id"] == sid), None)


def test_stories_view_shows_representative_texts_side_by_side(tmp_path):
    with api_server(tmp_path) as srv, chromium() as driver:
        keys = RedisKeys(srv.prefix)
        now = time.time()
        r = redis.Redis.from_url(REDIS_URL)  # the topic's windows: what puts TSLA in the topic menu
        r.sadd(keys.topics, "TSLA")
        r.sadd(keys.langs("TSLA"), "en", "de", "*")
        r.hset(keys.window("60", "TSLA", "*", int(now // 60 * 60)), mapping={"count": 5, "sentiment_sum": -2.0})
        r.close()
        recall = [item(i, 0, lang, f"{text} ({i})", now - 60 + i, -0.6 if lang == "en" else -0.2,
                       f"https://news.example/{i}" if lang == "en" else "social")
                  for i, (lang, text) in enumerate([("en", EN), ("de", DE)] * 2)]
        (sid, *rest) = write(srv.prefix, recall)
        assert set(rest) == {sid}

        driver.get(srv.base + "/")
        driver.find_element(By.ID, "token").send_keys(READ_TOKEN + Keys.ENTER)
        wait(driver, lambda d: d.find_element(By.ID, "conn").text == "Connected.", 20, "connected")
        story = wait(driver, lambda d: shown(d, sid), 20, "the story in the stories view")
        assert story["title"].startswith("4 events in 2 languages") and set(story["bars"]) == {"en", "de"}
        assert "en -0.60" in story["label"] and "de -0.20" in story["label"]
        reps = {rep["lang"]: rep for rep in story["reps"]}
        assert set(reps) == {"en", "de"}
        assert reps["en"]["text"].startswith(EN) and reps["de"]["text"].startswith(DE)
        assert reps["en"]["textLang"] == "en" and reps["de"]["textLang"] == "de"
        assert reps["en"]["href"].startswith("https://news.example/") and reps["de"]["href"] is None
        # side by side: the two texts on one row
        tops = driver.execute_script("return [...document.querySelectorAll(arguments[0])].map((e) => "
                                     "Math.round(e.getBoundingClientRect().top));",
                                     f"article[data-story='{sid}'] .reps li")
        assert len(tops) == 2 and tops[0] == tops[1], tops
        assert "1 active story for TSLA" in driver.find_element(By.ID, "stories-status").text

        # a new story while the page is open (hostile text, a javascript: link): shown at the next refresh, as text
        (sid2,) = write(srv.prefix, [item(50, 1, "en", HOSTILE, now, 0.7, "javascript:alert(1)")])
        story2 = wait(driver, lambda d: shown(d, sid2), 15, "the new story")
        assert story2["reps"][0]["text"] == HOSTILE and story2["reps"][0]["href"] is None
        assert [s["id"] for s in driver.execute_script(STORIES_JS)] == [sid2, sid]  # latest first
        assert not driver.find_elements(By.CSS_SELECTOR, "#stories img")
        assert driver.execute_script("return window.__xss === undefined")

        assert low_contrast(driver) == []
        # only the expected 404 of the live feed (served by `babelwatch notify`), nothing else
        assert all("/v1/alerts/stream" in e["message"] and "404" in e["message"] for e in console_errors(driver))
