"""Recent events kept in memory, so the dashboard can show the sample events an alert cites (its
annotations hold only event ids), and the dead-letter counts by reason.

Served where the app hosts the notifier (``babelwatch notify``), like the live stream: an
:class:`EventSampler` (a ``mode.Service``) reads the events and scored topics from their end (no
consumer group: it commits nothing and takes nothing from the workers) and the dead-letter topic
from its beginning. Memory is bounded: ``BABELWATCH_DASHBOARD_SAMPLES`` events, texts cut to
:data:`MAX_TEXT`, images kept as received (base64, not decoded) and capped in total; a thumbnail is
made only when asked for, once.
A record that does not parse is skipped, alone.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import io
import logging
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

import mode
import orjson

from contracts.settings import Settings

log = logging.getLogger("babelwatch.api.samples")

MAX_TEXT = 500
THUMB_PX = 96
MAX_IMAGE_TOTAL = 16 << 20  # base64 image characters kept across all cached events


@dataclass
class Sample:
    id: str
    topic: str
    source: str
    lang: str | None
    text: str
    ts: float | None
    image: str | None = None  # base64 as received: decoded only if a thumbnail is asked for
    thumbnail: str | None = None  # data: URL, made on first request
    label: str | None = None
    sentiment: float | None = None

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "topic": self.topic, "source": self.source, "lang": self.lang, "text": self.text,
                "ts": self.ts, "label": self.label, "sentiment": self.sentiment,
                "has_image": self.image is not None or self.thumbnail is not None, "thumbnail": self.thumbnail}


def _str(v: Any, limit: int) -> str | None:
    return v[:limit] if isinstance(v, str) else None


class SampleCache:
    """The last ``capacity`` events by id (insertion order, oldest evicted first)."""

    def __init__(self, capacity: int, settings: Settings, max_image_total: int = MAX_IMAGE_TOTAL) -> None:
        self.capacity = capacity
        self.settings = settings
        self.max_image_total = max_image_total
        self.image_bytes = 0
        self.items: OrderedDict[str, Sample] = OrderedDict()
        self.formats = {f.strip().upper() for f in settings.image_formats.split(",") if f.strip()}

    def add_event(self, raw: bytes) -> bool:
        """An events-topic record; False (and nothing kept) when it is not a usable event."""
        try:
            ev = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(ev, dict):
            return False
        ident, topic = _str(ev.get("id"), 200), _str(ev.get("topic"), 200)
        if not ident or not topic:
            return False
        ts = ev.get("ts")
        image = self._image(ev.get("image_b64"))
        self._put(Sample(id=ident, topic=topic, source=_str(ev.get("source"), 100) or "",
                         lang=_str(ev.get("lang"), 35), text=_str(ev.get("text"), MAX_TEXT) or "",
                         ts=float(ts) if isinstance(ts, (int, float)) and not isinstance(ts, bool) else None,
                         image=image))
        return True

    def add_scored(self, raw: bytes) -> None:
        """A scored record: the detected language and the label, onto the cached event."""
        try:
            sc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return
        if not isinstance(sc, dict) or not isinstance(sc.get("id"), str):
            return
        found = self.items.get(sc["id"])
        if found is None:
            return
        found.lang = _str(sc.get("lang"), 35) or found.lang
        found.label = _str(sc.get("label"), 16)
        s = sc.get("sentiment")
        found.sentiment = float(s) if isinstance(s, (int, float)) and not isinstance(s, bool) else None

    def get(self, ids: list[str]) -> list[dict[str, Any]]:
        """The cached events among ``ids``, thumbnails made here (tests, tools)."""
        found = [self.items[i] for i in ids if i in self.items]
        for sample, b64 in [(x, x.image) for x in found if x.image is not None]:
            self._settle(sample, b64, self._thumbnail(b64))
        return [x.public() for x in found]

    async def aget(self, ids: list[str]) -> list[dict[str, Any]]:
        """:meth:`get` with the image decoding in a thread: the event loop (the notifier's too) never
        waits on Pillow. The cache itself is only touched on the loop."""
        found = [self.items[i] for i in ids if i in self.items]
        todo = [(x, x.image) for x in found if x.image is not None]
        if todo:
            thumbs = await asyncio.to_thread(lambda: [self._thumbnail(b64) for _, b64 in todo])
            for (sample, b64), thumb in zip(todo, thumbs):
                self._settle(sample, b64, thumb)
        return [x.public() for x in found]

    def _settle(self, sample: Sample, b64: str, thumb: str | None) -> None:
        if sample.image is not b64:  # replaced meanwhile
            return
        sample.thumbnail, sample.image = thumb, None
        if self.items.get(sample.id) is sample:  # evicted ones were uncounted already
            self.image_bytes -= len(b64)

    def _put(self, s: Sample) -> None:
        old = self.items.pop(s.id, None)
        if old is not None and old.image is not None:
            self.image_bytes -= len(old.image)
        self.items[s.id] = s
        if s.image is not None:
            self.image_bytes += len(s.image)
        while len(self.items) > self.capacity or self.image_bytes > self.max_image_total:
            _, gone = self.items.popitem(last=False)
            if gone.image is not None:
                self.image_bytes -= len(gone.image)

    def _image(self, b64: Any) -> str | None:
        if not isinstance(b64, str) or not b64 or len(b64) > (self.settings.max_image_bytes * 4) // 3 + 4:
            return None
        return b64

    def _thumbnail(self, b64: str) -> str | None:
        """A small JPEG as a data: URL, or None for an image that does not decode within the limits."""
        from PIL import Image

        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            return None
        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if (im.format or "").upper() not in self.formats or w * h > self.settings.max_image_pixels \
                        or max(w, h) > self.settings.max_image_side \
                        or max(w, h) > self.settings.max_image_aspect * max(1, min(w, h)):
                    return None
                im.draft("RGB", (THUMB_PX, THUMB_PX))  # JPEG: decode at a fraction of the size
                im = im.convert("RGB")
                im.thumbnail((THUMB_PX, THUMB_PX))
                buf = io.BytesIO()
                im.save(buf, "JPEG", quality=70)
        except Exception:  # noqa: BLE001 - a hostile image fails only itself
            return None
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


class EventSampler(mode.Service):
    """Feeds a :class:`SampleCache` and counts dead letters by reason (module doc)."""

    def __init__(self, settings: Settings, **kw: Any) -> None:
        super().__init__(**kw)
        self.settings = settings
        self.cache = SampleCache(settings.dashboard_samples, settings)
        self.dead_letters: Counter[str] = Counter()
        self.consumer = None

    async def on_start(self) -> None:
        # in the background: a broker that is down must not keep the API (or the notifier) from starting
        self.assigned: set = set()
        self.add_future(self._run())

    async def _connect(self) -> None:
        from stream import clients

        warned = False
        while not self.should_stop:
            consumer = clients.async_consumer(self.settings)
            try:
                await consumer.start()
                self.consumer = consumer
                await self._assign_new(from_end=True)
                return
            except asyncio.CancelledError:
                await consumer.stop()
                raise
            except Exception as exc:  # noqa: BLE001 - retried; the dashboard's extras wait for the broker
                await consumer.stop()
                self.consumer = None
                if not warned:
                    log.warning("event sampler: broker not reachable (%s); retrying", type(exc).__name__)
                    warned = True
                await asyncio.sleep(2.0)

    async def _run(self) -> None:
        await self._connect()
        if self.consumer is not None:
            await self._consume()

    async def _assign_new(self, from_end: bool) -> None:
        """Assign the partitions of our topics not assigned yet (topics may be created after we
        start: those are read from their beginning). Recent topics that existed at start are read
        from their end: Tansu's end offsets may be a little short (shared NOTES), which only means a
        few older events are cached too. Dead letters are always counted from the beginning."""
        from aiokafka import TopicPartition

        s = self.settings
        await self.consumer.topics()  # refreshes the metadata
        new = [TopicPartition(t, p) for t in (s.topic_events, s.topic_scored, s.topic_deadletter)
               for p in (self.consumer.partitions_for_topic(t) or ())]
        new = [tp for tp in new if tp not in self.assigned]
        if not new:
            return
        self.assigned |= set(new)
        self.consumer.assign(sorted(self.assigned))
        recent = [tp for tp in new if tp.topic != s.topic_deadletter]
        if from_end and recent:
            await self.consumer.seek_to_end(*recent)
        for tp in new if not from_end else [tp for tp in new if tp.topic == s.topic_deadletter]:
            await self.consumer.seek_to_beginning(tp)

    async def on_stop(self) -> None:
        if self.consumer is not None:
            consumer, self.consumer = self.consumer, None
            try:
                await consumer.stop()
            except Exception:  # noqa: BLE001
                log.exception("event sampler: consumer stop failed")

    async def _consume(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        next_check = loop.time() + 2.0
        while not self.should_stop:
            try:
                if len({tp.topic for tp in self.assigned}) < 3 and loop.time() >= next_check:
                    next_check = loop.time() + 2.0
                    await self._assign_new(from_end=False)
                if not self.assigned:
                    await asyncio.sleep(0.5)
                    continue
                batches = await self.consumer.getmany(timeout_ms=500)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the dashboard's extras must not take the notifier down
                log.warning("event sampler: fetch failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)
                continue
            for tp, records in batches.items():
                for rec in records:
                    if rec.value is None:
                        continue
                    if tp.topic == s.topic_events:
                        self.cache.add_event(rec.value)
                    elif tp.topic == s.topic_scored:
                        self.cache.add_scored(rec.value)
                    else:
                        self.dead_letters[_reason(rec.value)] += 1


def _reason(raw: bytes) -> str:
    try:
        r = orjson.loads(raw).get("reason")
    except (orjson.JSONDecodeError, AttributeError):
        return "unreadable"
    return r[:40] if isinstance(r, str) else "unreadable"
