"""``InMemoryStories``: the story rules in one process, no Redis (``babelwatch score --stories``,
the quality bench, tests). Same protocol and rules as the Redis store (docs/design.md "Stories")."""
from __future__ import annotations

import time
from typing import Callable, Sequence

from workers.stories.book import TopicBook
from workers.stories.centers import LanguageCenters
from workers.stories.rules import StoryRules
from workers.stories.items import StoryItem, eligible, normalized
from workers.stories.view import story_view


class InMemoryStories:
    def __init__(self, rules: StoryRules | None = None, clock: Callable[[], float] = time.time) -> None:
        self.rules = rules or StoryRules()
        self.clock = clock  # event times are clamped to it, as the Redis store does
        self.centers = LanguageCenters(self.rules.dim)
        self.books: dict[str, TopicBook] = {}
        self._seen: dict[tuple[str, str], int] = {}  # ledger: (source, topic) -> last offset applied

    async def assign(self, items: Sequence[StoryItem]) -> list[str | None]:
        return self.assign_sync(items)

    def assign_sync(self, items: Sequence[StoryItem]) -> list[str | None]:
        now = self.clock()
        items = [normalized(it) for it in items]
        out: list[str | None] = [None] * len(items)
        # topic by topic, in order within each, as the Redis store applies a batch (one script
        # call per topic): the language centers then evolve the same way in both
        by_topic: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            by_topic.setdefault(item.topic, []).append(i)
        for topic, idx in by_topic.items():
            fresh = [(i, e) for i in idx if (e := self._vector(items[i])) is not None]
            xs = self.centers.center_many([items[i].lang for i, _ in fresh], [e for _, e in fresh]) if fresh else []
            rows = [(i, x) for (i, _), x in zip(fresh, xs) if x is not None]
            if not rows:
                continue
            book = self.books.get(topic)
            if book is None:
                book = self.books[topic] = TopicBook(topic, self.rules)
            done = book.assign_batch([(items[i], x, min(float(items[i].ts), now)) for i, x in rows])
            for (i, _), (sid, _runner, _ended) in zip(rows, done):
                out[i] = sid
        return out

    def _vector(self, item: StoryItem):
        """The item's unit embedding, or None (already applied, or no usable text/embedding)."""
        if item.position is not None:  # per partition and topic, as the Redis ledger
            src, off = (item.position[0], item.topic), item.position[1]
            if off <= self._seen.get(src, -1):
                return None  # already applied
            self._seen[src] = off
        return eligible(item, self.rules.dim)

    async def stories(self, topic: str) -> list[dict]:
        book = self.books.get(topic)
        if book is None:
            return []
        views = [story_view(s.to_json(), self.rules.rate_tau_s) for s in book.stories.values()]
        return sorted(views, key=lambda v: (-v["last_seen"], v["id"]))
