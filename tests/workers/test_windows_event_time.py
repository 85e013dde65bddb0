"""Event-time windows on the real Redis: window shapes, watermark, late events, closed windows."""
from __future__ import annotations

import random
import uuid

import pytest
import redis.asyncio as aioredis
from bw_factories import make_scored

from workers.windows import WindowSpec, WindowStore

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def r():
    client = aioredis.from_url(REDIS_URL)
    prefix = f"bwtest-et-{uuid.uuid4().hex[:8]}"
    client.test_prefix = prefix
    yield client
    keys = [k async for k in client.scan_iter(f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def store(r, size=10, extra=(), lateness=5.0, history=3) -> WindowStore:
    return WindowStore(r, size_s=size, retention=10, prefix=r.test_prefix, history=history,
                       extra=[WindowSpec.parse(e) for e in extra], allowed_lateness_s=lateness)


def test_window_spec_parsing():
    assert WindowSpec.parse("60") == WindowSpec(60, 60)
    assert WindowSpec.parse("300/60") == WindowSpec(300, 60)
    assert WindowSpec.parse("300/60").name == "300/60" and WindowSpec.parse("60").name == "60"
    for bad in ("0", "300/70", "-5", "x"):
        with pytest.raises(ValueError):
            WindowSpec.parse(bad)


async def test_hopping_window_holds_an_event_in_each_overlapping_window(r):
    st = store(r, size=10, extra=["30/10"])
    await st.apply_batch([make_scored("A", "en", "positive", 1005.0)])
    hop = WindowSpec(30, 10)
    for start in (980, 990, 1000):  # [980,1010), [990,1020), [1000,1030) all hold 1005
        assert (await r.hget(st.key("A", "en", start, hop), "count")) == b"1"
    assert await r.hget(st.key("A", "en", 970, hop), "count") is None
    assert await r.hget(st.key("A", "en", 1010, hop), "count") is None
    assert (await r.hget(st.key("A", "*", 1000), "count")) == b"1"  # primary tumbling window


async def test_every_spec_counts_and_expires_with_its_own_size(r):
    st = store(r, size=10, extra=["60", "3600"])
    batch = [make_scored("B", "de", "negative", 7200.0 + i) for i in range(25)]
    await st.apply_batch(batch)
    assert (await r.hget(st.key("B", "de", 7200), "count")) == b"10"
    assert (await r.hget(st.key("B", "de", 7200, WindowSpec(60, 60)), "count")) == b"25"
    assert (await r.hget(st.key("B", "*", 7200, WindowSpec(3600, 3600)), "count")) == b"25"
    assert 0 < await r.ttl(st.key("B", "de", 7200, WindowSpec(3600, 3600))) <= 3600 * 10
    assert 0 < await r.ttl(st.key("B", "de", 7200)) <= 10 * 10


async def test_modalities_and_sum_of_squares(r):
    st = store(r)
    a = make_scored("C", "en", "positive", 100.0, sentiment=0.5)
    b = make_scored("C", "en", "negative", 101.0, sentiment=-0.25).model_copy(update={"modalities": ["text", "image"]})
    c = make_scored("C", "en", "neutral", 102.0, sentiment=0.0).model_copy(update={"modalities": ["image"]})
    await st.apply_batch([a, b, c])
    h = {k.decode(): float(v) for k, v in (await r.hgetall(st.key("C", "en", 100))).items()}
    assert h["text"] == 2 and h["image"] == 2
    assert h["sentiment_sum"] == pytest.approx(0.25)
    assert h["sentiment_sq"] == pytest.approx(0.25 + 0.0625)


async def test_late_events_inside_grace_count_and_later_ones_are_diverted(r):
    st = store(r, size=10, lateness=5.0)
    await st.apply_batch([make_scored("D", "en", "neutral", 200.0)])
    res = await st.apply_batch([
        make_scored("D", "en", "neutral", 196.0),  # 4 s behind the newest: inside the grace period
        make_scored("D", "en", "neutral", 194.0),  # 6 s behind: late
        make_scored("E", "en", "neutral", 10.0),   # another topic has its own watermark
    ])
    assert res.late == [1]
    assert res.applied == 2
    assert (await r.hget(st.key("D", "en", 190), "count")) == b"1"  # 196 counted, 194 not
    assert (await r.hget(f"{r.test_prefix}:stats", "late")) == b"1"


async def test_windows_close_when_the_watermark_passes_their_end(r):
    st = store(r, size=10, lateness=5.0)
    res = await st.apply_batch([make_scored("F", "en", "positive", 300.0 + i) for i in range(10)]
                               + [make_scored("F", "fr", "negative", 305.0)])
    assert res.closed == []  # first sight of the topic: nothing closes
    res = await st.apply_batch([make_scored("F", "en", "positive", 321.0)])  # watermark 316
    closed = {(c.lang, c.start): c for c in res.closed}
    assert set(closed) == {("en", 300), ("fr", 300), ("*", 300)}
    assert closed[("*", 300)].count == 11 and closed[("en", 300)].labels["positive"] == 10
    assert closed[("fr", 300)].sentiment_mean < 0
    res = await st.apply_batch([make_scored("F", "en", "positive", 322.0)])  # watermark 317: none
    assert res.closed == []
    res = await st.apply_batch([make_scored("F", "en", "positive", 340.0)])  # 335: [310,320) and [320,330)
    got = {(c.lang, c.start, c.count) for c in res.closed}
    assert ("*", 310, 0) in got  # an empty window closes too: zero volume is a signal
    assert ("*", 320, 2) in got and ("en", 320, 2) in got


async def test_out_of_order_stream_within_lateness_is_counted_exactly(r):
    st = store(r, size=10, lateness=60.0)
    rng = random.Random(5)
    events = [make_scored("G", rng.choice(["en", "de"]), "neutral", 1000.0 + rng.uniform(0, 50)) for _ in range(300)]
    rng.shuffle(events)
    for i in range(0, len(events), 37):
        res = await st.apply_batch(events[i:i + 37])
        assert res.late == []
    for start in range(1000, 1050, 10):
        want = sum(1 for e in events if start <= e.ts < start + 10)
        assert int(await r.hget(st.key("G", "*", start), "count") or 0) == want


async def test_series_for_each_window_shape(r):
    st = store(r, size=10, extra=["30/10"])
    await st.apply_batch([make_scored("H", "en", "neutral", 1000.0 + i) for i in range(0, 40, 2)])
    tumbling = await st.series("H", "*", 1039.0, 4)
    assert [(s, int(h.get("count", 0))) for s, h in tumbling] == [(1000, 5), (1010, 5), (1020, 5), (1030, 5)]
    hopping = await st.series("H", "*", 1039.0, 3, WindowSpec(30, 10))
    # the newest hopping window starting at or before 1039 starts at 1030: [1030,1060) holds 5
    assert [(s, int(h.get("count", 0))) for s, h in hopping] == [(1010, 15), (1020, 10), (1030, 5)]
    assert (await st.series("H", "*", 2000.0, 1))[0] == (2000, {})


async def existing_windows(r, topic: str) -> set[tuple[str, str, int]]:
    """(shape, lang, start) of every window key of ``topic`` in Redis."""
    out = set()
    async for k in r.scan_iter(f"{r.test_prefix}:w:*:{topic}:*", count=1000):
        shape, _, lang, start = k.decode()[len(r.test_prefix) + 3:].rsplit(":", 3)
        out.add((shape, lang, int(start)))
    return out


async def test_a_long_jump_in_event_time_reports_every_existing_window_closed(r):
    # retention 10 windows: most of the 80 closing windows lie beyond it
    st = store(r, size=10, extra=["30/10"], lateness=5.0)
    await st.apply_batch([make_scored("J", "en", "positive", 1000.0), make_scored("J", "en", "negative", 1003.0)])
    # one batch whose event time runs 80 windows ahead: each event is within the lateness of the
    # one before, so all count, and the watermark jumps from 995 to 1786 at the end of the batch
    batch = [make_scored("J", ("en", "de")[k % 2], "neutral", 1001.0 + 10 * k) for k in range(80)]
    res = await st.apply_batch(batch)
    assert res.late == [] and res.applied == 80
    wm0, wm1 = 995.0, 1786.0
    closing = {(shape, lang, start) for shape, lang, start in await existing_windows(r, "J")
               if wm0 < start + int(shape.split("/")[0]) <= wm1}
    reported = {(c.spec.name, c.lang, c.start) for c in res.closed}
    assert len({s for shape, _, s in closing if shape == "10"}) == 78 > 48
    assert closing <= reported  # every window that exists is reported closed ...
    assert reported - closing == {("10", "*", 990), ("30/10", "*", 970)}  # ... plus the empty "*" ones
    first = {(c.spec.name, c.lang): c for c in res.closed if c.start == 1000}
    assert first[("10", "en")].count == 3 and first[("10", "*")].labels == {"negative": 1, "neutral": 1,
                                                                           "positive": 1}
    assert res.closed_dropped == 0 and await r.hget(f"{r.test_prefix}:stats", "closed_dropped") is None
    assert res.outbox == len(res.closed)


async def test_a_jump_over_a_quiet_gap_counts_the_empty_windows_it_does_not_list(r):
    st = store(r, size=10, lateness=5.0)  # retention: 10 windows
    await st.apply_batch([make_scored("Q", "en", "positive", 1000.0)])
    res = await st.apply_batch([make_scored("Q", "en", "positive", 3000.0)])  # watermark 995 -> 2995
    reported = {(c.lang, c.start, c.count) for c in res.closed}
    # the window with data, the empty '*' one next to it, and the newest 10 (zero volume is a
    # signal the detectors' history still covers); the 188 empty ones between are counted
    assert reported == {("en", 1000, 1), ("*", 1000, 1), ("*", 990, 0)} | {("*", s, 0) for s in range(2890, 2990, 10)}
    assert res.closed_dropped == 188
    assert await r.hget(f"{r.test_prefix}:stats", "closed_dropped") == b"188"


async def test_the_script_builds_the_same_keys_as_python_for_any_topic(r):
    """windows.lua builds window and language keys from RedisKeys.pieces: a topic with separators,
    format and hash-tag characters and a NUL lands on the keys Python readers compute."""
    odd = "a:b%s{c}\x00d"
    st = store(r, size=10, extra=["30/10"], lateness=0.0)
    await st.apply_batch([make_scored(odd, "en", "positive", 1000.0)])
    res = await st.apply_batch([make_scored(odd, "en", "negative", 1045.0)])
    assert int(await r.hget(st.key(odd, "en", 1000), "count")) == 1
    assert int(await r.hget(st.key(odd, "*", 990, WindowSpec(30, 10)), "count")) == 1
    assert await st.topics() == [odd] and await st.langs(odd) == ["*", "en"]
    assert {(c.topic, c.spec.name, c.lang, c.start, c.count) for c in res.closed if c.count} == {
        (odd, name, lang, start, 1) for lang in ("en", "*")
        for name, start in (("10", 1000), ("30/10", 980), ("30/10", 990), ("30/10", 1000))}
    opened = [(w.topic, w.start, w.count, w.history) for w in res.open if w.lang == "en"]
    assert opened == [(odd, 1040, 1, (None, None, None))]
