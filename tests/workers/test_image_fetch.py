"""Events' image_url fetched by the worker (BABELWATCH_FETCH_IMAGE_URLS), against REAL HTTP servers on
127.0.0.1 (tests/bw_http.py), a REAL Triton and the REAL Redis, through ``PipelineRuntime`` as the
worker builds it. 127.0.0.1 is private: the tests that fetch allow it explicitly.
"""
from __future__ import annotations

import base64
import contextlib
import time

import pytest

from bw_http import LocalReceiver
from bw_triton import sample_images
from test_pipeline_triton import _start, _teardown, assert_well_formed, ev, prefix, triton  # noqa: F401
from workers.windows import window_start

IMG = sample_images(1)[0]  # a PNG of the demo stream
TEXT = "The quarterly results were mixed, with some good news and some bad news"
FETCH = {"fetch_image_urls": True, "image_fetch_allow_private": True}


@contextlib.asynccontextmanager
async def pipeline(triton, prefix, **overrides):
    rt = await _start(triton, prefix, **overrides)
    try:
        yield rt.processor
    finally:
        await _teardown(rt, prefix)


@contextlib.asynccontextmanager
async def receivers(*scripts):
    started = [await LocalReceiver(script=list(s)).start() for s in scripts]
    try:
        yield started
    finally:
        for r in started:
            await r.stop()


def now_ts() -> float:
    return window_start(time.time(), 60) + 1


def close(a: dict[str, float], b: dict[str, float], tol: float = 1e-4) -> bool:
    return all(abs(a[k] - b[k]) <= tol for k in a)


async def test_text_and_url_scored_with_the_fetched_image(triton, prefix):
    async with receivers([("body", IMG, "image/png")]) as (server,), pipeline(triton, prefix, **FETCH) as proc:
        url = server.url("/img.png")
        t = now_ts()
        result = await proc.process([
            ev("url", TEXT, ts=t, lang="en", image_url=url),
            ev("url-again", TEXT, ts=t, lang="en", image_url=url),
            ev("inline", TEXT, ts=t, lang="en", image_b64=base64.b64encode(IMG).decode()),
            ev("text-only", TEXT, ts=t, lang="en"),
            ev("url-only", ts=t, image_url=url),
            ev("inline-only", ts=t, image_b64=base64.b64encode(IMG).decode()),
        ])
    assert result.dead == []
    by_id = {s.id: s for s in result.scored}
    assert set(by_id) == {"url", "url-again", "inline", "text-only", "url-only", "inline-only"}
    assert_well_formed(result.scored)
    assert by_id["url"].modalities == ["text", "image"] and by_id["url"].image_error is None
    assert close(by_id["url"].probabilities, by_id["inline"].probabilities)
    assert close(by_id["url-again"].probabilities, by_id["inline"].probabilities)
    assert by_id["url-only"].modalities == ["image"] and by_id["url-only"].image_error is None
    assert close(by_id["url-only"].probabilities, by_id["inline-only"].probabilities)
    # the image really took part: text alone scores differently
    assert not close(by_id["url"].probabilities, by_id["text-only"].probabilities, 1e-3)
    assert by_id["text-only"].modalities == ["text"]
    # identical URLs of a batch: one request, asking for an image
    assert len(server.requests) == 1
    assert server.requests[0].method == "GET" and server.requests[0].headers["Accept"] == "image/*"


async def test_redirects_followed_and_every_hop_checked(triton, prefix):
    # 127.0.0.1 allowed through the networks list, not allow_private: the metadata address stays refused
    async with receivers([("body", IMG, "image/png")]) as (image_server,), \
            receivers([("redirect", image_server.url("/img.png"), 302)], [("redirect", "http://169.254.169.254/x", 301)],
                      [("redirect", "/again", 307)]) as (to_image, to_metadata, loop), \
            pipeline(triton, prefix, fetch_image_urls=True, image_fetch_allowed_networks="127.0.0.1/32") as proc:
        t = now_ts()
        result = await proc.process([
            ev("to-image", TEXT, ts=t, lang="en", image_url=to_image.url("/a")),
            ev("to-metadata", TEXT, ts=t, lang="en", image_url=to_metadata.url("/b")),
            ev("loop", TEXT, ts=t, lang="en", image_url=loop.url("/c")),
        ])
    by_id = {s.id: s for s in result.scored}
    assert by_id["to-image"].modalities == ["text", "image"] and by_id["to-image"].image_error is None
    assert len(image_server.requests) == 1
    assert by_id["to-metadata"].modalities == ["text"]
    assert by_id["to-metadata"].image_error.startswith("blocked: ") and "169.254.169.254" in by_id["to-metadata"].image_error
    assert by_id["loop"].image_error == "too_many_redirects: more than 3"
    assert len(loop.requests) == 4  # the first request and 3 redirects, then it gives up


async def test_oversize_image_scored_on_text(triton, prefix):
    big = IMG + b"\0" * 4000
    async with receivers([("body", big, "image/png")], [("chunked", big * 1000, "image/png")]) as (declared, chunked), \
            pipeline(triton, prefix, max_image_bytes=2000, **FETCH) as proc:
        t = now_ts()
        t0 = time.monotonic()
        result = await proc.process([
            ev("declared", TEXT, ts=t, lang="en", image_url=declared.url("/big.png")),
            ev("chunked", TEXT, ts=t, lang="en", image_url=chunked.url("/big.png")),
            ev("text-only", TEXT, ts=t, lang="en"),
        ])
        elapsed = time.monotonic() - t0
    by_id = {s.id: s for s in result.scored}
    assert set(by_id) == {"declared", "chunked", "text-only"} and result.dead == []
    assert by_id["declared"].image_error == f"too_large: {len(big)} bytes > 2000"
    assert by_id["chunked"].image_error == "too_large: more than 2000 bytes"  # stopped reading 4 MB
    for name in ("declared", "chunked"):
        assert by_id[name].modalities == ["text"]
        assert close(by_id[name].probabilities, by_id["text-only"].probabilities)
    assert elapsed < 2.0  # the default fetch timeout: never waited for


async def test_timeout_scores_on_text_without_stalling_the_batch(triton, prefix):
    async with receivers(["hang"]) as (server,), \
            pipeline(triton, prefix, image_fetch_timeout_s=1.0, image_fetch_concurrency=2, **FETCH) as proc:
        t = now_ts()
        await proc.process([ev("warm", TEXT, ts=t, lang="en")])  # the model's first call out of the timing
        t0 = time.monotonic()
        result = await proc.process([
            *(ev(f"slow-{i}", TEXT, ts=t, lang="en", image_url=server.url(f"/{i}.png")) for i in range(4)),
            ev("text-only", TEXT, ts=t, lang="en"),
        ])
        elapsed = time.monotonic() - t0
    by_id = {s.id: s for s in result.scored}
    assert set(by_id) == {"slow-0", "slow-1", "slow-2", "slow-3", "text-only"}
    for i in range(4):
        assert by_id[f"slow-{i}"].image_error == "timeout: not fetched within 1s"
        assert by_id[f"slow-{i}"].modalities == ["text"]
        assert close(by_id[f"slow-{i}"].probabilities, by_id["text-only"].probabilities)
    # the hanging server holds each request 5 s: one deadline of 1 s for the whole batch, not 4 x 1 s
    assert 1.0 <= elapsed < 2.0, elapsed
    # two at a time (image_fetch_concurrency), fetched concurrently
    assert len(server.requests) == 2
    assert abs(server.requests[0].at - server.requests[1].at) < 0.5


async def test_private_address_refused_unless_allowed(triton, prefix):
    # the alerting allowance does not open image fetching: it has its own
    async with receivers([("body", IMG, "image/png")]) as (server,), \
            pipeline(triton, prefix, fetch_image_urls=True, alerting_allow_private=True) as proc:
        t = now_ts()
        result = await proc.process([
            ev("private", TEXT, ts=t, lang="en", image_url=server.url("/img.png")),
            ev("private-only", ts=t, image_url=server.url("/img.png")),
        ])
    assert server.requests == []  # never contacted
    [scored] = result.scored
    assert scored.id == "private" and scored.modalities == ["text"]
    assert scored.image_error == "blocked: '127.0.0.1' resolves to non-public address 127.0.0.1 (refused)"
    [dead] = result.dead
    assert (dead.reason, dead.event_id) == ("image_fetch_failed", "private-only")
    assert dead.errors == [{"loc": "image_url", "msg": scored.image_error}]


async def test_url_only_event_unfetchable_goes_to_dead_letters(triton, prefix):
    async with receivers([404], [("body", b"<html>nope</html>", "text/html")], [("body", b"not a png", "image/png")]) \
            as (missing, html, garbage), pipeline(triton, prefix, **FETCH) as proc:
        t = now_ts()
        records = [
            ev("missing-only", ts=t, image_url=missing.url("/a.png")),
            ev("html-only", ts=t, image_url=html.url("/a.png")),
            ev("garbage-only", ts=t, image_url=garbage.url("/a.png")),
            ev("garbage-with-text", TEXT, ts=t, lang="en", image_url=garbage.url("/a.png")),
            ev("text-only", TEXT, ts=t, lang="en"),
        ]
        result = await proc.process(records)
        stored = await proc.windows.read("TSLA", "*", window_start(t, 60))
    dead = {d.event_id: d for d in result.dead}
    assert set(dead) == {"missing-only", "html-only", "garbage-only"}
    assert dead["missing-only"].reason == "image_fetch_failed"
    assert dead["missing-only"].errors == [{"loc": "image_url", "msg": "http_error: HTTP 404"}]
    assert dead["html-only"].reason == "image_fetch_failed"
    assert dead["html-only"].errors == [{"loc": "image_url", "msg": "not_image: content-type 'text/html'"}]
    # fetched, but the model cannot decode it: as an undecodable inline image
    assert dead["garbage-only"].reason == "invalid_image" and dead["garbage-only"].errors[0]["loc"] == "image_url"
    assert dead["missing-only"].raw == records[0].value.decode()
    assert (dead["missing-only"].partition, dead["missing-only"].offset) == (0, records[0].origin.offset)
    # with text, an undecodable fetched image costs the image only
    by_id = {s.id: s for s in result.scored}
    assert set(by_id) == {"garbage-with-text", "text-only"}
    assert by_id["garbage-with-text"].image_error.startswith("invalid_image: ")
    assert by_id["garbage-with-text"].modalities == ["text"]
    assert close(by_id["garbage-with-text"].probabilities, by_id["text-only"].probabilities)
    assert stored["count"] == 2  # the windows count what was scored, nothing else


async def test_fetching_disabled_keeps_url_unfetched(triton, prefix):
    async with receivers([("body", IMG, "image/png")]) as (server,), pipeline(triton, prefix) as proc:
        t = now_ts()
        result = await proc.process([
            ev("url", TEXT, ts=t, lang="en", image_url=server.url("/img.png")),
            ev("text-only", TEXT, ts=t, lang="en"),
            ev("url-only", ts=t, image_url=server.url("/img.png")),
        ])
        assert proc.images is None
    assert server.requests == []
    by_id = {s.id: s for s in result.scored}
    assert set(by_id) == {"url", "text-only"}
    assert by_id["url"].modalities == ["text"] and by_id["url"].image_error is None
    assert close(by_id["url"].probabilities, by_id["text-only"].probabilities)
    [dead] = result.dead
    assert (dead.reason, dead.event_id) == ("invalid_event", "url-only")
    assert "fetching is disabled" in dead.errors[0]["msg"]


pytestmark = pytest.mark.integration
