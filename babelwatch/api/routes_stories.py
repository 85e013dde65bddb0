"""Stories: a topic's active cross-lingual stories and one story by id, as the workers keep them in
Redis (``workers.stories.redis_store.RedisStories``; guarantees in docs/design.md, "Stories").
Reads: a token with scope ``read``.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from babelwatch.api.auth import require_reader
from babelwatch.api.errors import AUTH, NOT_FOUND
from workers.stories.redis_store import RedisStories
from workers.stories.rules import StoryRules
from workers.stories.view import select_stories

router = APIRouter(tags=["stories"], responses=AUTH, dependencies=[Depends(require_reader)])

MAX_LIMIT = 100
# an event's topic is any 1..200 characters (contracts.schema.Event); control characters never are one
TOPIC_PATTERN = r"^[^\x00-\x1f\x7f]+$"
STORY_ID_PATTERN = r"^[0-9a-f]{16}$"  # workers.stories.items.story_id
LANG_PATTERN = r"^[a-z]{2,8}$"  # workers.stories.items.lang_key: how stories count languages
# a detail request without a topic looks the id up in this many known topics at most (one round trip)
MAX_TOPICS_SEARCHED = 1000

Topic = Query(min_length=1, max_length=200, pattern=TOPIC_PATTERN, description="the events' topic (ticker, brand)")


class Representative(BaseModel):
    id: str = Field(description="the event id")
    lang: str
    text: str = Field(description="an excerpt of the event's text (BABELWATCH_STORY_EXCERPT_CHARS at most)")
    link: str | None = Field(description="the event's URL, else its source (news, social, ...)")


class Story(BaseModel):
    id: str
    topic: str
    first_seen: float = Field(description="event time of its first event, epoch seconds")
    last_seen: float = Field(description="event time of its latest event, epoch seconds")
    count: int = Field(description="events in the story, all languages")
    languages: list[str] = Field(description="its languages, most events first")
    counts: dict[str, int] = Field(description="events per language")
    sentiment: dict[str, float] = Field(description="mean sentiment per language, -1 negative .. +1 positive")
    rate_per_min: float = Field(description="growth: decayed events per minute, as of rate_at")
    rate_at: float = Field(description="event time the rate was last updated, epoch seconds")
    representatives: dict[str, Representative] = Field(
        description="per language, the event closest to the story's centroid")


def _store(request: Request) -> RedisStories:
    """One reader per app (it only registers the write script, which reads never run)."""
    store = getattr(request.app.state, "stories", None)
    if store is None:
        s = request.app.state.settings
        store = request.app.state.stories = RedisStories(request.app.state.redis, s.redis_prefix,
                                                         StoryRules.from_settings(s))
    return store


@router.get("/stories", response_model=list[Story])
async def stories(
    request: Request,
    topic: str = Topic,
    lang: str | None = Query(None, pattern=LANG_PATTERN, description="only stories with events in this language "
                                                                    "(lowercase primary subtag: en, de, ja)"),
    order: Literal["recent", "size", "growth"] = Query(
        "recent", description="recent: latest event first; size: most events first; growth: fastest growing first"),
    limit: int = Query(20, ge=1, le=MAX_LIMIT),
) -> list[Story]:
    """A topic's active stories (an empty list for a topic without any)."""
    found = await _store(request).stories(topic)
    return [Story(**v) for v in select_stories(found, lang=lang, order=order, limit=limit)]


@router.get("/stories/{story_id}", response_model=Story, responses=NOT_FOUND)
async def story(
    request: Request,
    story_id: str = Path(min_length=16, max_length=16, pattern=STORY_ID_PATTERN, description="the story's id"),
    topic: str | None = Query(None, min_length=1, max_length=200, pattern=TOPIC_PATTERN,
                              description="its topic; without it the id is looked up in every topic with windows"),
) -> Story:
    """One active story: languages, counts and sentiment per language, growth, representatives."""
    store = _store(request)
    if topic is not None:
        found = await store.story(topic, story_id)
    else:
        topics = sorted(await request.app.state.windows.topics())[:MAX_TOPICS_SEARCHED]
        found = await _find(store, topics, story_id)
    if found is None:
        raise HTTPException(404, "no such active story (unknown id, another topic, or it ended)")
    return Story(**found)


async def _find(store: RedisStories, topics: list[str], story_id: str) -> dict | None:
    """The story in whichever topic holds it: one pipelined HEXISTS per topic, then one read."""
    if not topics:
        return None
    pipe = store.redis.pipeline(transaction=False)
    for t in topics:
        pipe.hexists(store.keys.story_meta(t), story_id)
    for t, there in zip(topics, await pipe.execute()):
        if there:
            return await store.story(t, story_id)
    return None
