"""``RedisStories``: stories in Redis, shared by every worker, each event applied at most once.

Per topic and batch: the worker plans with its cached copy of the topic's stories (``TopicBook``,
the nearest and runner-up per event), then ONE script call (stories.lua) checks the offset ledger,
decides among those candidates and the stories other workers changed meanwhile, updates centroids,
counts and representatives, and answers what changed so the copy is exact again. Guarantees and
measurements: docs/design.md, "Stories".
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import orjson

from contracts.keys import RedisKeys
from workers.stories.book import TopicBook
from workers.stories.centers import LanguageCenters
from workers.stories.record import Story
from workers.stories.rules import CENTER_PRIOR, StoryRules
from workers.stories.items import StoryItem, eligible, excerpt, normalized, story_id
from workers.stories.view import story_view

_SCRIPT = Path(__file__).with_name("stories.lua").read_text()


class _Copy:
    """A worker's copy of one topic's stories, exact as of ``version`` (see the module docstring)."""

    def __init__(self, topic: str, rules: StoryRules) -> None:
        self.book = TopicBook(topic, rules)
        self.version = 0


class RedisStories:
    def __init__(self, redis, prefix: str = "bw", rules: StoryRules | None = None, max_topics: int = 1000) -> None:
        self.redis = redis  # redis.asyncio.Redis, decode_responses=False (sums are bytes)
        self.keys = RedisKeys(prefix)
        self.rules = rules or StoryRules()
        self.centers = LanguageCenters(self.rules.dim)  # the worker's copy of the running centers
        # the worker's copies, least recently used first: topics are free-form, so the copies are
        # capped (a dropped copy is reloaded from Redis on the topic's next batch)
        self._copies: OrderedDict[str, _Copy] = OrderedDict()
        self.max_topics = max_topics
        self._script = redis.register_script(_SCRIPT)
        self.skipped_total = 0  # redelivered events already applied

    def _keys(self, topic: str) -> list[str]:
        k = self.keys
        return [k.offsets, k.story_index(topic), k.story_versions(topic), k.story_sums(topic), k.story_meta(topic),
                k.story_state(topic), k.story_centers]

    async def assign(self, items: Sequence[StoryItem]) -> list[str | None]:
        out: list[str | None] = [None] * len(items)
        by_topic: dict[str, list[tuple[int, StoryItem, np.ndarray]]] = defaultdict(list)
        for i, item in enumerate(items):
            item = normalized(item)
            e = eligible(item, self.rules.dim)
            if e is not None:
                by_topic[item.topic].append((i, item, e))
            elif item.position is not None and isinstance(item.topic, str) and item.topic:
                by_topic[item.topic].append((i, item, None))  # still moves the ledger, as in memory
        for topic, rows in by_topic.items():
            for i, sid in zip((r[0] for r in rows), await self._apply(topic, rows)):
                out[i] = sid
        return out

    async def _apply(self, topic: str, rows: list) -> list[str | None]:
        copy = self._copies.get(topic)
        if copy is None:
            copy = self._copies[topic] = _Copy(topic, self.rules)
            while len(self._copies) > self.max_topics:
                self._copies.popitem(last=False)
            await self._load(copy)
        self._copies.move_to_end(topic)
        wall = time.time()
        book = copy.book
        r = self.rules
        args: list = [topic, copy.version, repr(wall), repr(r.threshold), r.max_active, repr(r.quiet_s),
                      repr(r.rate_tau_s), r.dim, max(1, math.ceil(r.quiet_s)), repr(CENTER_PRIOR)]
        # what planning changes in the copy, to undo where the script decided otherwise
        saved = (dict(book.sums), {sid: st.last_ts for sid, st in book.stories.items()}, book.now)
        # (item, x, ts) of the rows that get a story, planned together on the copy
        usable = [(item, e) for _i, item, e in rows if e is not None]
        xs = iter(self.centers.center_many([it.lang for it, _ in usable], [e for _, e in usable]) if usable else ())
        plan = []
        for _i, item, e in rows:
            x = next(xs) if e is not None else None
            plan.append((item, x, min(float(item.ts), wall)) if x is not None else None)
        planned = iter(book.assign_batch([p for p in plan if p is not None]))
        events, vectors = [], []
        for (_i, item, e), p in zip(rows, plan):
            src, off = (self.keys.story_source(item.position[0], topic), int(item.position[1])) if item.position else ("", 0)
            if p is None:  # no story, but its offset counts as applied
                events.append([src, off, "", "", 0, 0, "", "", "", ""])
                continue
            sid, runner, _ = next(planned)
            events.append([src, off, item.event_id, item.lang, float(item.sentiment), p[2], story_id(topic, item.event_id),
                           ",".join(c for c in (sid, runner) if c), excerpt(item.text, r.excerpt_chars), item.link or ""])
            vectors.append(e)
        args += [orjson.dumps(events), np.asarray(vectors, dtype="<f4").tobytes() if vectors else b""]
        reply = await self._script(keys=self._keys(topic), args=args)
        return self._absorb(copy, reply, saved)

    def _absorb(self, copy: _Copy, reply: list, saved: tuple) -> list[str | None]:
        """Make the copy exact again from the script's answer; the story id per row."""
        head = orjson.loads(reply[0])
        book = copy.book
        if head["reset"]:
            for sid in list(book.stories):
                book.remove(sid)
        for sid in [*(head["removed"] or ()), *(head["gone"] or ())]:
            book.remove(sid)
        changed = head["changed"] or ()
        for n, (sid, last_ts) in enumerate(changed):
            s = np.frombuffer(reply[1 + 2 * n + 1], dtype="<f4").astype(np.float64)
            book.set_sum(sid, s)
            st = book.stories.get(sid)
            if st is None:
                st = book.stories[sid] = Story(sid, book.topic, float(last_ts), float(last_ts))
            st.last_ts = float(last_ts)
            book.touch(st)
        base = 1 + 2 * len(changed)
        for n, (lang, count) in enumerate(head["centers"] or ()):
            self.centers.sums[lang] = np.frombuffer(reply[base + n], dtype="<f4").astype(np.float64)
            self.centers.counts[lang] = int(count)
        # where the script decided otherwise than the plan, the copy goes back to what it was
        sums_before, last_before, _now = saved
        kept = {sid for sid, _ in changed}
        for sid in [sid for sid, v in book.sums.items() if sid not in kept and sums_before.get(sid) is not v]:
            if sid in sums_before:
                book.set_sum(sid, sums_before[sid])
                book.stories[sid].last_ts = last_before[sid]
                book.touch(book.stories[sid])
            else:
                book.remove(sid)
        book.now = float(head["now"])
        copy.version = int(head["version"])
        self.skipped_total += int(head["skipped"])
        return [sid or None for sid in head["stories"] or ()]

    async def _load(self, copy: _Copy) -> None:
        """A new copy: every active story of the topic (one round trip), so the script has little to add."""
        k, topic = self.keys, copy.book.topic
        pipe = self.redis.pipeline(transaction=True)
        pipe.hget(k.story_state(topic), "version")
        pipe.hget(k.story_state(topic), "now")
        pipe.hgetall(k.story_sums(topic))
        pipe.zrange(k.story_index(topic), 0, -1, withscores=True)
        version, now, sums, index = await pipe.execute()
        last = {_text(sid): ts for sid, ts in index}
        for sid, raw in sums.items():
            sid = _text(sid)
            if sid in last:
                copy.book.set_sum(sid, np.frombuffer(raw, dtype="<f4").astype(np.float64))
                copy.book.stories[sid] = Story(sid, topic, last[sid], last[sid])
                copy.book.touch(copy.book.stories[sid])
        copy.book.now = float(now) if now is not None else -math.inf
        copy.version = int(version or 0)

    async def stories(self, topic: str) -> list[dict]:
        raw = await self.redis.hgetall(self.keys.story_meta(topic))
        views = [story_view(orjson.loads(v), self.rules.rate_tau_s) for v in raw.values()]
        return sorted(views, key=lambda v: (-v["last_seen"], v["id"]))

    async def story(self, topic: str, sid: str) -> dict | None:
        raw = await self.redis.hget(self.keys.story_meta(topic), sid)
        return story_view(orjson.loads(raw), self.rules.rate_tau_s) if raw is not None else None


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
