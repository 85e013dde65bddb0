"""The dashboard in a real browser (Debian chromium + chromedriver, Selenium) against the real stack:
Tansu broker, Redis, Triton, a `babelwatch worker` and `babelwatch notify` (notifier + API + page).

The page is loaded (first paint and weight measured), the token typed once; a chart updates while
events are produced; the TSLA burst's alert appears with its sample events (text, language, image
thumbnail) and in the live SSE feed; a silence is created from the page (a bad matcher first: the
API's message shown, nothing created) and expired from it, both seen through the API; the browser
console stays free of errors throughout. /docs renders offline from the packaged Swagger UI.
"""
from __future__ import annotations

import base64
import time

import httpx
import orjson
import pytest
from bw_browser import chromium, console_errors, first_paint_ms, low_contrast, page_bytes
from bw_images import encoded
from kafka import KafkaProducer
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

pytestmark = pytest.mark.integration

WINDOW = 10
TOKEN = "dashboard-test-token-0123456789"
LANGS = ["en", "de", "fr", "es"]
TEXT = "Shares moved after the company reported quarterly results"


def produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for ev in events:
        producer.send(topic, orjson.dumps(ev))
    producer.flush()
    producer.close()


def wait(driver, cond, timeout: float, what: str):
    # the page re-renders its panels every 2 s: an element found a moment ago may be gone, try again
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(StaleElementReferenceException,)).until(cond, message=what)


# reads of re-rendered panels are done in one script call: a consistent snapshot, no stale elements
def attr(driver, css: str, name: str) -> str | None:
    return driver.execute_script("const e = document.querySelector(arguments[0]);"
                                 "return e ? e.getAttribute(arguments[1]) : null;", css, name)


def text(driver, css: str) -> str | None:
    return driver.execute_script("const e = document.querySelector(arguments[0]);"
                                 "return e ? e.innerText : null;", css)


ALERTS_JS = """
return [...document.querySelectorAll('#alerts article')].map((a) => ({
  topic: a.dataset.topic, text: a.innerText,
  samples: [...a.querySelectorAll('.sample')].map((s) => {
    const img = s.querySelector('img'), lang = s.querySelector('.lang'), t = s.querySelector('.text');
    return {id: s.dataset.id, lang: lang && lang.innerText, text: t && t.innerText,
            src: img && img.getAttribute('src'), alt: img && img.getAttribute('alt')};
  })}));
"""


def tsla_alert_with_thumbnail(driver):
    for a in driver.execute_script(ALERTS_JS):
        if a["topic"] == "TSLA" and any(s["src"] for s in a["samples"]):
            return a
    return None


def test_dashboard_live_in_a_real_browser(world, record_property):
    w = world(window_s=WINDOW, spike_history=4, spike_min_history=3, spike_min_count=20, spike_threshold=2.5,
              batch_size=32, alert_keep_firing_for_s=60, api_token=TOKEN)
    bootstrap = w.stack.bootstrap
    notifier = w.launch_notifier()
    w.start_worker()
    notifier.wait_ready()
    api = httpx.Client(base_url=notifier.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    try:
        with chromium() as driver:
            driver.get(notifier.url + "/")
            fcp = wait(driver, first_paint_ms, 10, "a first paint")  # paint entries come a moment later
            weight = page_bytes(driver)
            record_property("first_contentful_paint_ms", fcp)
            record_property("page_bytes", weight)
            print(f"dashboard: first contentful paint {fcp:.0f} ms, {weight} bytes")
            assert fcp is not None and fcp < 1000, fcp
            assert weight < 60_000, weight  # page, script and style, uncompressed

            # every form control has a label; the token goes in by keyboard and stays out of the URL
            for control in driver.find_elements(By.CSS_SELECTOR, "input, select, textarea"):
                cid = control.get_attribute("id")
                assert driver.find_elements(By.CSS_SELECTOR, f"label[for='{cid}']"), cid
            token_box = driver.find_element(By.ID, "token")
            token_box.send_keys(TOKEN + Keys.ENTER)
            wait(driver, lambda d: d.find_element(By.ID, "conn").text == "Connected.", 20, "page connected")
            assert TOKEN not in driver.current_url
            assert driver.execute_script("return sessionStorage.getItem('babelwatch.token')") == TOKEN
            wait(driver, lambda d: d.find_element(By.ID, "feed-status").get_attribute("data-live") == "1", 20,
                 "live feed open")

            # baseline: one event per topic and language in each of four earlier windows
            t0 = (time.time() // WINDOW) * WINDOW + WINDOW / 2
            base = [{"id": f"b{k}-{t}-{lang}", "source": "news", "topic": t, "text": TEXT, "lang": lang,
                     "ts": (t0 // WINDOW - k) * WINDOW + 1} for k in range(4, 0, -1)
                    for t in ("AAPL", "TSLA") for lang in LANGS]
            produce(bootstrap, w.topics["events"], base)
            wait(driver, lambda d: int(attr(d, "#chart-volume", "data-total") or 0) >= 4 * len(LANGS) * 2, 60,
                 "the AAPL chart shows the baseline")  # per language + all languages
            before = int(attr(driver, "#chart-volume", "data-total"))
            assert driver.find_element(By.ID, "topic").get_attribute("value") == "AAPL"
            assert driver.find_elements(By.CSS_SELECTOR, "#chart-volume polyline[data-lang='de']")

            # more AAPL events now, early in a window (so it is still the current one when shown): the
            # chart and the heat map follow
            time.sleep(WINDOW - time.time() % WINDOW + 0.3)
            now_events = [{"id": f"a-now-{i}", "source": "news", "topic": "AAPL", "text": TEXT, "lang": "de",
                           "ts": time.time()} for i in range(3)]
            produce(bootstrap, w.topics["events"], now_events)
            wait(driver, lambda d: int(attr(d, "#chart-volume", "data-total") or 0) >= before + 6, 30,
                 "the chart updated")
            heat = text(driver, "#heatmap td[data-topic='AAPL'][data-lang='de']")
            assert heat.split()[0] == "3", heat  # the current window of AAPL in German

            # the burst: 60 English TSLA events with an image in the current window
            image = base64.b64encode(encoded("PNG", (48, 32))).decode()
            burst = [{"id": f"burst{i}", "source": "social", "topic": "TSLA", "text": f"{TEXT} #{i}", "lang": "en",
                      "image_b64": image, "ts": t0} for i in range(60)]
            produce(bootstrap, w.topics["events"], burst)
            article = wait(driver, tsla_alert_with_thumbnail, 90, "the TSLA alert with its sample events")
            assert "detector=volume_spike" in article["text"] and "topic=TSLA" in article["text"]
            samples = article["samples"]
            assert samples and all(s["id"].startswith("burst") for s in samples)
            assert all(s["lang"] == "en" and s["text"].startswith(TEXT) for s in samples)
            assert all(s["src"].startswith("data:image/jpeg;base64,") for s in samples)
            assert all(s["alt"] == f"image of event {s['id']}" for s in samples)
            wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#feed li[data-topic='TSLA'][data-state='firing']"),
                 30, "the live feed shows the firing alert")

            assert console_errors(driver) == []
            # a silence from the page: a bad matcher first (the API's message, nothing created)
            box = driver.find_element(By.ID, "sil-matchers")
            box.send_keys("topic=~(unclosed")
            driver.find_element(By.CSS_SELECTOR, "#silence-form button[type='submit']").click()
            wait(driver, lambda d: "Not created" in text(d, "#sil-error"), 10, "422 shown")
            assert "regex" in text(driver, "#sil-error")
            # the browser reports the refused request itself; that one, and nothing else
            assert [(e["source"], "/v1/silences" in e["message"] and "422" in e["message"])
                    for e in console_errors(driver)] == [("network", True)]
            assert api.get("/v1/silences").json() == []
            box.clear()
            box.send_keys("topic=TSLA\nlanguage=en")
            driver.find_element(By.ID, "sil-comment").send_keys("known burst")
            driver.find_element(By.CSS_SELECTOR, "#silence-form button[type='submit']").click()
            wait(driver, lambda d: d.find_element(By.ID, "sil-error").get_attribute("data-created"), 10, "created")
            sid = driver.find_element(By.ID, "sil-error").get_attribute("data-created")
            silences = api.get("/v1/silences").json()
            assert [(s["id"], s["comment"], sorted((m["name"], m["op"], m["value"]) for m in s["matchers"]))
                    for s in silences] == [(sid, "known burst", [("language", "=", "en"), ("topic", "=", "TSLA")])]
            assert api.get("/v1/silences", params={"state": "active"}).json()[0]["id"] == sid
            # ... and expired from the page, by keyboard
            def press_expire(d) -> bool:
                found = d.find_elements(By.CSS_SELECTOR, f"button[data-expire='{sid}']")
                if not found:
                    return False
                found[0].send_keys(Keys.ENTER)  # stale if the table was just redrawn: wait() tries again
                return True

            wait(driver, press_expire, 10, "expire button pressed")
            wait(driver, lambda d: attr(d, f"tr[data-silence='{sid}']", "data-state") == "expired", 10, "expired")
            assert api.get("/v1/silences", params={"state": "expired"}).json()[0]["id"] == sid

            assert low_contrast(driver) == []  # every visible text, heat-map cells and alerts included
            health = text(driver, "dd[data-stat='dead letters']")
            assert health.startswith("0"), health
            assert console_errors(driver) == []

            # /docs works offline: Swagger UI from the installed package renders the API
            driver.get(notifier.url + "/docs")
            wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"), 20, "Swagger UI")
            assert "/v1/overview" in driver.page_source
            assert console_errors(driver) == []
    finally:
        api.close()
