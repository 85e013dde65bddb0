"""Stories: each scored event with a text embedding joins the nearest active story of its topic,
across languages, or starts one (docs/design.md, "Stories").

``StoryAssigner`` is the one protocol; implementations: ``workers.stories.redis_store.RedisStories``
(the worker's: shared by every worker, effectively-once per Kafka offset) and
``workers.stories.memory.InMemoryStories`` (one process: ``babelwatch score --stories`` and the
quality bench). Both apply the rules of ``workers.stories.book`` (with ``record``, ``centers``, ``rules``).
"""
from __future__ import annotations

from typing import Protocol, Sequence

from workers.stories.rules import StoryRules
from workers.stories.items import StoryItem

__all__ = ["StoryAssigner", "StoryItem", "StoryRules"]


class StoryAssigner(Protocol):
    async def assign(self, items: Sequence[StoryItem]) -> list[str | None]:
        """The story id of each item, in order; None for an item that cannot join one (no usable
        text or embedding) or, in the Redis store, that was already applied (a redelivery)."""

    async def stories(self, topic: str) -> list[dict]:
        """A topic's active stories, most recent first (``story_view`` form)."""
