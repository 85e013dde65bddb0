"""The dashboard's recent-events cache (babelwatch.api.samples): bounded, and every hostile record
or image fails only itself."""
from __future__ import annotations

import base64
import time

import orjson
import pytest
from bw_images import encoded, image_traps

from babelwatch.api.samples import MAX_TEXT, SampleCache, _reason
from contracts.settings import Settings


def event(i, **kw) -> bytes:
    return orjson.dumps({"id": f"e{i}", "source": "news", "topic": "TSLA", "text": f"text {i}", "lang": "en",
                         "ts": time.time(), **kw})


def cache(n: int = 10, **kw) -> SampleCache:
    return SampleCache(n, Settings(), **kw)


def test_events_scored_and_thumbnails():
    c = cache()
    img = base64.b64encode(encoded("JPEG", (640, 480))).decode()
    assert c.add_event(event(1, image_b64=img, lang=None))
    c.add_scored(orjson.dumps({"id": "e1", "lang": "de", "label": "negative", "sentiment": -0.7}))
    [s] = c.get(["e1", "unknown"])
    assert (s["lang"], s["label"], s["sentiment"], s["text"]) == ("de", "negative", -0.7, "text 1")
    assert s["has_image"] and s["thumbnail"].startswith("data:image/jpeg;base64,")
    thumb = base64.b64decode(s["thumbnail"].split(",", 1)[1])
    from io import BytesIO

    from PIL import Image

    assert max(Image.open(BytesIO(thumb)).size) <= 96
    assert c.image_bytes == 0  # the original bytes are dropped once the thumbnail exists
    assert c.get(["e1"])[0]["thumbnail"] == s["thumbnail"]


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'"str"', b"{}", b'{"id": 5, "topic": "x"}',
                                 b'{"id": "x"}', b'{"id": "", "topic": "T"}', b"\xff\xfe"])
def test_unusable_records_are_skipped_alone(raw):
    c = cache()
    assert not c.add_event(raw)
    assert c.add_event(event(2))
    assert [s["id"] for s in c.get(["e2"])] == ["e2"]
    c.add_scored(raw)  # never raises


def test_long_text_is_cut_and_bad_fields_ignored():
    c = cache()
    assert c.add_event(event(3, text="x" * 50_000, lang=["en"], ts="yesterday", source=7))
    [s] = c.get(["e3"])
    assert len(s["text"]) == MAX_TEXT and s["lang"] is None and s["ts"] is None and s["source"] == ""


@pytest.mark.parametrize("name,data,_", image_traps(), ids=[t[0] for t in image_traps()])
def test_hostile_images_get_no_thumbnail(name, data, _):
    c = cache()
    assert c.add_event(event(4, image_b64=base64.b64encode(data).decode()))
    [s] = c.get(["e4"])
    assert s["thumbnail"] is None and s["text"] == "text 4"


def test_bad_base64_and_oversized_images_get_no_thumbnail():
    c = cache()
    c.add_event(event(5, image_b64="!!!not base64!!!"))
    c.add_event(event(6, image_b64="A" * (Settings().max_image_bytes * 2)))
    c.add_event(event(7, image_b64=7))
    assert [(s["id"], s["thumbnail"]) for s in c.get(["e5", "e6", "e7"])] == [("e5", None), ("e6", None), ("e7", None)]
    assert c.image_bytes == 0


def test_bounded_by_count_and_image_bytes():
    c = cache(3)
    for i in range(10):
        c.add_event(event(i))
    assert list(c.items) == ["e7", "e8", "e9"]
    img = base64.b64encode(encoded("PNG", (200, 200))).decode()
    size = len(img)
    c = cache(100, max_image_total=size * 2)
    for i in range(5):
        c.add_event(event(i, image_b64=img))
    assert c.image_bytes <= size * 2 and list(c.items) == ["e3", "e4"]
    c.add_event(event(4, image_b64=img))  # the same id again: replaced, not counted twice
    assert c.image_bytes <= size * 2 and len(c.items) == 2


def test_dead_letter_reason():
    assert _reason(b'{"reason": "invalid_event"}') == "invalid_event"
    assert _reason(b"garbage") == "unreadable" and _reason(b"[1]") == "unreadable"
    assert _reason(b'{"reason": 5}') == "unreadable"


async def test_async_get_makes_thumbnails_off_the_loop_and_survives_eviction():
    c = cache(2)
    img = base64.b64encode(encoded("JPEG", (320, 240))).decode()
    c.add_event(event(1, image_b64=img))
    c.add_event(event(2, image_b64=img))
    [one, two] = await c.aget(["e1", "e2"])
    assert one["thumbnail"].startswith("data:image/jpeg") and two["thumbnail"] == one["thumbnail"]
    assert c.image_bytes == 0
    c.add_event(event(3, image_b64=img))  # evicts e1
    c.add_event(event(4, image_b64=img))
    assert c.image_bytes == 2 * len(img) and list(c.items) == ["e3", "e4"]
