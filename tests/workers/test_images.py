"""Image URL fetching without a network: validation, settings, content types, the guard, the deadline.

The fetches against a real HTTP server and a real Triton are in tests/workers/test_image_fetch.py.
"""
from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from contracts.schema import Event, Limits, Scored
from contracts.settings import Settings
from workers.alerting.sinks.netguard import AddressGuard
from workers.images import ImageFetcher, content_type_allowed, parse_networks
from workers.pipeline import BatchProcessor
from workers.validate import EventValidator

URL_ONLY = {"id": "u1", "source": "news", "topic": "TSLA", "ts": 1767225600.0,
            "image_url": "https://images.example.com/a.png"}


def test_url_only_event_needs_fetching_enabled():
    off = EventValidator(Limits()).validate(orjson.dumps(URL_ONLY))
    assert off.reason == "invalid_event"
    assert "fetching is disabled" in off.errors[0]["msg"]

    on = EventValidator(Limits(fetch_image_urls=True)).validate(orjson.dumps(URL_ONLY))
    assert isinstance(on, Event) and on.image_url == URL_ONLY["image_url"] and on.text == ""
    blank = EventValidator(Limits(fetch_image_urls=True)).validate(orjson.dumps({**URL_ONLY, "text": "  "}))
    assert isinstance(blank, Event)


def test_fetching_enabled_still_requires_some_content():
    nothing = {k: v for k, v in URL_ONLY.items() if k != "image_url"}
    dead = EventValidator(Limits(fetch_image_urls=True)).validate(orjson.dumps(nothing))
    assert dead.reason == "invalid_event"
    assert dead.errors[0]["msg"] == "Value error, event has neither text nor image"
    empty_url = EventValidator(Limits(fetch_image_urls=True)).validate(orjson.dumps({**URL_ONLY, "image_url": ""}))
    assert empty_url.reason == "invalid_event"


def test_scored_image_error_defaults_to_none():
    s = Scored(id="a", topic="T", source="news", lang="en", lang_detected=False, label="neutral",
               probabilities={"negative": 0.2, "neutral": 0.6, "positive": 0.2}, sentiment=0.0,
               modalities=["text"], model="fusion:1", ts=1.0, scored_at=2.0)
    assert s.image_error is None
    assert orjson.loads(s.model_dump_json())["image_error"] is None


def test_settings_from_environment(monkeypatch):
    defaults = Settings()
    assert (defaults.fetch_image_urls, defaults.image_fetch_allow_private, defaults.image_fetch_allowed_networks) \
        == (False, False, "")
    monkeypatch.setenv("BABELWATCH_FETCH_IMAGE_URLS", "true")
    monkeypatch.setenv("BABELWATCH_IMAGE_FETCH_TIMEOUT_S", "0.75")
    monkeypatch.setenv("BABELWATCH_IMAGE_FETCH_CONCURRENCY", "3")
    monkeypatch.setenv("BABELWATCH_IMAGE_FETCH_ALLOWED_NETWORKS", "10.0.7.0/24, fd00::/8")
    monkeypatch.setenv("BABELWATCH_MAX_IMAGE_BYTES", "1234")
    fetcher = ImageFetcher.from_settings(Settings())
    assert (fetcher.timeout_s, fetcher.concurrency, fetcher.max_bytes) == (0.75, 3, 1234)
    assert [str(n) for n in fetcher.guard.allowed_networks] == ["10.0.7.0/24", "fd00::/8"]
    assert fetcher.guard.allow_private is False
    # the alerting allowance does not open image fetching
    monkeypatch.setenv("BABELWATCH_ALERTING_ALLOW_PRIVATE", "true")
    assert ImageFetcher.from_settings(Settings()).guard.allow_private is False


def test_parse_networks():
    assert parse_networks("") == []
    assert parse_networks(" 10.0.0.0/8 ,,192.168.1.0/24 ") == ["10.0.0.0/8", "192.168.1.0/24"]


@pytest.mark.parametrize("value, ok", [
    ("image/png", True), ("image/jpeg; charset=binary", True), ("IMAGE/WEBP", True),
    (None, True), ("", True), ("application/octet-stream", True),
    ("text/html; charset=utf-8", False), ("application/json", False), ("text/plain", False),
])
def test_content_type_allowed(value, ok):
    assert content_type_allowed(value) is ok


async def test_bad_urls_and_private_destinations_are_refused_without_a_request():
    fetcher = ImageFetcher(AddressGuard(), timeout_s=2.0)
    try:
        got = await fetcher.fetch_all([
            "ftp://example.com/a.png", "file:///etc/passwd", "http:///nohost", "http://example.com:99999/a",
            "http://127.0.0.1/a.png", "http://169.254.169.254/latest/meta-data", "http://[::1]/a",
            "http://10.1.2.3/a.png", "http://[::ffff:192.168.0.1]/a",
        ])
    finally:
        await fetcher.stop()
    kinds = {url: r.error.split(":", 1)[0] for url, r in got.items()}
    assert all(r.data is None for r in got.values())
    assert kinds == {
        "ftp://example.com/a.png": "bad_url", "file:///etc/passwd": "bad_url", "http:///nohost": "bad_url",
        "http://example.com:99999/a": "bad_url",
        "http://127.0.0.1/a.png": "blocked", "http://169.254.169.254/latest/meta-data": "blocked",
        "http://[::1]/a": "blocked", "http://10.1.2.3/a.png": "blocked", "http://[::ffff:192.168.0.1]/a": "blocked",
    }


async def test_a_name_resolving_to_a_private_address_is_refused():
    async def resolver(host, port):
        return ["93.184.216.34", "10.0.0.5"]  # one private answer refuses the host

    fetcher = ImageFetcher(AddressGuard(resolver=resolver))
    try:
        got = await fetcher.fetch_all(["https://images.example.com/a.png"])
    finally:
        await fetcher.stop()
    assert got["https://images.example.com/a.png"].error.startswith("blocked: ")
    assert "10.0.0.5" in got["https://images.example.com/a.png"].error


async def test_one_deadline_for_the_batch_and_identical_urls_once():
    calls: list[str] = []

    async def slow_resolver(host, port):
        calls.append(host)
        await asyncio.sleep(30)
        return ["93.184.216.34"]

    fetcher = ImageFetcher(AddressGuard(resolver=slow_resolver, resolve_timeout_s=60), timeout_s=0.3,
                           concurrency=2)
    urls = [f"http://host{i % 5}.example/a.png" for i in range(10)]  # 5 distinct, more than the 2 slots
    t0 = time.monotonic()
    try:
        got = await fetcher.fetch_all(urls)
    finally:
        await fetcher.stop()
    elapsed = time.monotonic() - t0
    assert elapsed < 1.0, elapsed  # not 5 x 0.3 s: queued URLs share the batch's deadline
    assert list(got) == list(dict.fromkeys(urls))
    assert all(r.error.startswith("timeout: ") for r in got.values())
    assert sorted(calls) == ["host0.example", "host1.example"]  # at most `concurrency` at once


async def test_empty_batch_makes_no_client():
    fetcher = ImageFetcher(AddressGuard())
    assert await fetcher.fetch_all([]) == {}
    assert fetcher._client is None


def test_processor_refuses_url_only_validation_without_a_fetcher():
    with pytest.raises(ValueError, match="no ImageFetcher"):
        BatchProcessor(EventValidator(Limits(fetch_image_urls=True)), None, None, None, [], None)
    BatchProcessor(EventValidator(Limits()), None, None, None, [], None)  # fetching off: fine
