"""RedisStories against the real Redis on 127.0.0.1:6379 (no mocks): the same stories as the
in-memory rules, several workers on one topic, redelivery, expiry, events without text, hostile rows.

Every test works under its own key prefix ``bwtest-<uuid>`` and deletes its keys on teardown.
"""
from __future__ import annotations

import asyncio
import math
import time
import uuid

import numpy as np
import pytest
import redis.asyncio as aioredis

from contracts.keys import RedisKeys
from workers.stories.rules import StoryRules
from workers.stories.items import StoryItem
from workers.stories.memory import InMemoryStories
from workers.stories.redis_store import RedisStories

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
DIM = 384
BASES = np.random.default_rng(11).normal(size=(12, DIM))
T0 = time.time() - 7200  # event times in the recent past: the wall clock does not cut them


def vec(k: int, seed: int, noise: float = 0.2) -> np.ndarray:
    return BASES[k] + noise * np.random.default_rng(seed).normal(size=DIM) * math.sqrt(DIM) / 10


def ev(n: int, story: int, *, topic="TSLA", lang=None, pos=True, ts=None, text=None, emb="auto",
       partition=0, noise=0.2) -> StoryItem:
    lang = lang or ("en", "de", "fr", "ja", "zh")[n % 5]
    return StoryItem(topic, (f"events#id:{partition}", n) if pos else None, f"{topic}-e{n}", lang,
                     text if text is not None else f"report {n} about story {story}", 0.1 * (story % 3 - 1),
                     vec(story, n, noise) if isinstance(emb, str) else emb, T0 + (n if ts is None else ts), "news")


@pytest.fixture
async def redis_prefix():
    r = aioredis.Redis.from_url(REDIS_URL)
    prefix = f"bwtest-{uuid.uuid4().hex[:10]}"
    yield r, prefix
    keys = [k async for k in r.scan_iter(match=f"{prefix}:*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


def stream(n_events: int = 120, n_stories: int = 6, topics=("TSLA",), seed: int = 3, noise=0.2) -> list[StoryItem]:
    rng = np.random.default_rng(seed)
    return [ev(i, int(rng.integers(n_stories)), topic=topics[i % len(topics)], noise=noise) for i in range(n_events)]


async def run_batches(store, items, size=16) -> list:
    out = []
    for i in range(0, len(items), size):
        out += await store.assign(items[i:i + size])
    return out


def partition(ids) -> set[frozenset]:
    groups: dict = {}
    for i, sid in enumerate(ids):
        groups.setdefault(sid, set()).add(i)
    return {frozenset(g) for g in groups.values()}


async def test_redis_store_assigns_as_the_in_memory_rules(redis_prefix):
    r, prefix = redis_prefix
    items = stream(150, 8, topics=("TSLA", "AAPL"))
    rules = StoryRules(threshold=0.3)
    memory = InMemoryStories(rules)
    expected = [sid for i in range(0, len(items), 16) for sid in memory.assign_sync(items[i:i + 16])]
    got = await run_batches(RedisStories(r, prefix, rules), items)
    assert got == expected
    assert None not in got
    truth = partition([f"{it.topic}/{int(it.text.split()[-1])}" for it in items])
    assert partition(got) == truth  # well separated stories: found exactly


async def test_stories_read_back_with_languages_sentiment_and_representatives(redis_prefix):
    r, prefix = redis_prefix
    store = RedisStories(r, prefix, StoryRules(threshold=0.3))
    items = [ev(i, 0, lang=("en", "de", "ja")[i % 3], text=f"Tesla recall report number {i} " + "x" * 500)
             for i in range(9)]
    ids = await store.assign(items)
    assert len(set(ids)) == 1
    (story,) = await store.stories("TSLA")
    assert story["id"] == ids[0] and story["count"] == 9
    assert set(story["languages"]) == {"en", "de", "ja"} and story["counts"] == {"en": 3, "de": 3, "ja": 3}
    assert story["sentiment"]["en"] == pytest.approx(-0.1)
    assert story["first_seen"] == pytest.approx(T0) and story["last_seen"] == pytest.approx(T0 + 8)
    assert story["rate_per_min"] > 0
    for lang, rep in story["representatives"].items():
        assert rep["lang"] == lang and rep["id"].startswith("TSLA-e") and len(rep["text"]) <= 280
        assert rep["link"] == "news"
    assert await store.story("TSLA", ids[0]) == story
    assert await store.stories("AAPL") == []


async def test_two_workers_on_one_topic_build_the_same_stories(redis_prefix):
    """Two stores (two clients, two caches) take interleaved batches of one topic concurrently:
    every true story becomes exactly one story, counted once per event."""
    r, prefix = redis_prefix
    r2 = aioredis.Redis.from_url(REDIS_URL)
    try:
        rules = StoryRules(threshold=0.3)
        a, b = RedisStories(r, prefix, rules), RedisStories(r2, prefix, rules)
        # far apart stories: which worker goes first changes the language centers a little, and
        # no event may sit near the threshold, so any split or merge is the store's fault
        items = stream(240, 6, seed=5, noise=0.1)
        # each worker owns one partition (as Kafka assigns them); both see every story
        items = [StoryItem(it.topic, (f"events#id:{i % 2}", i), it.event_id, it.lang, it.text, it.sentiment,
                           it.embedding, it.ts, it.link) for i, it in enumerate(items)]
        mine = {0: [it for i, it in enumerate(items) if i % 2 == 0], 1: [it for i, it in enumerate(items) if i % 2]}

        async def work(store, part):
            out = []
            for i in range(0, len(part), 8):
                out += await store.assign(part[i:i + 8])
                await asyncio.sleep(0)  # let the other worker in between batches
            return out

        ids_a, ids_b = await asyncio.gather(work(a, mine[0]), work(b, mine[1]))
        by_event = {it.event_id: sid for it, sid in zip(mine[0], ids_a)} | \
                   {it.event_id: sid for it, sid in zip(mine[1], ids_b)}
        got = [by_event[it.event_id] for it in items]
        assert None not in got
        assert partition(got) == partition([it.text.split()[-1] for it in items])
        stories = await a.stories("TSLA")
        assert len(stories) == 6 and sum(s["count"] for s in stories) == len(items)
    finally:
        await r2.aclose()


async def test_a_redelivered_batch_counts_once(redis_prefix):
    r, prefix = redis_prefix
    store = RedisStories(r, prefix, StoryRules(threshold=0.3))
    first = [ev(i, i % 2) for i in range(10)]
    ids = await store.assign(first)
    assert None not in ids
    assert await store.assign(first) == [None] * 10  # same positions again
    assert store.skipped_total == 10
    # a fresh worker (no cache) redelivered the tail plus new events: only the new ones count
    other = RedisStories(r, prefix, StoryRules(threshold=0.3))
    mixed = first[6:] + [ev(i, i % 2) for i in range(10, 14)]
    again = await other.assign(mixed)
    assert again[:4] == [None] * 4 and None not in again[4:]
    assert set(again[4:]) <= set(ids)
    assert sum(s["count"] for s in await store.stories("TSLA")) == 14


async def test_quiet_stories_expire_and_keys_carry_a_ttl(redis_prefix):
    r, prefix = redis_prefix
    rules = StoryRules(threshold=0.3, quiet_s=600)
    store = RedisStories(r, prefix, rules)
    (old,) = await store.assign([ev(0, 0, ts=0)])
    (other,) = await store.assign([ev(1, 1, ts=700)])  # 700 s later: story 0 was quiet > 600 s
    (again,) = await store.assign([ev(2, 0, ts=710)])
    assert again not in (old, other)  # story 0 ended: its next report starts a new story
    assert {s["id"] for s in await store.stories("TSLA")} == {other, again}
    k = RedisKeys(prefix)
    assert await r.hget(k.story_sums("TSLA"), old) is None
    for key in (k.story_index("TSLA"), k.story_sums("TSLA"), k.story_meta("TSLA"), k.story_state("TSLA")):
        assert 0 < await r.ttl(key) <= 600


async def test_beyond_max_active_the_quietest_story_ends(redis_prefix):
    r, prefix = redis_prefix
    store = RedisStories(r, prefix, StoryRules(threshold=0.3, max_active=3))
    ids = await store.assign([ev(i, i, ts=i) for i in range(5)])
    assert {s["id"] for s in await store.stories("TSLA")} == set(ids[2:])


async def test_events_without_text_or_embedding_get_no_story_and_fail_alone(redis_prefix):
    r, prefix = redis_prefix
    store = RedisStories(r, prefix, StoryRules(threshold=0.3))
    long_text = "Tesla " * 20_000  # 120k characters
    items = [ev(0, 0),
             ev(1, 0, emb=None),                      # image-only: no embedding
             ev(2, 0, text=""),                       # empty
             ev(3, 0, text="😀🚀🔥😀"),                # emoji only
             ev(4, 0, emb=[math.nan] * DIM),          # NaN
             ev(5, 0, emb=[math.inf] * DIM),          # inf
             ev(6, 0, emb=[0.1] * 100),               # wrong dimension
             ev(7, 0, emb=[0.0] * DIM),               # zero vector
             ev(8, 0, text=long_text),
             ev(9, 0)]
    ids = await store.assign(items)
    assert ids[1:8] == [None] * 7
    assert ids[0] is not None and ids[0] == ids[8] == ids[9]
    (story,) = await store.stories("TSLA")
    assert story["count"] == 3
    assert all(len(rep["text"]) <= 280 for rep in story["representatives"].values())
    # the rows without a story still moved the ledger: redelivered, nothing changes
    assert await store.assign(items) == [None] * 10
    assert (await store.stories("TSLA"))[0]["count"] == 3


async def test_a_worker_whose_copy_outlived_the_topic_state_starts_over(redis_prefix):
    r, prefix = redis_prefix
    store = RedisStories(r, prefix, StoryRules(threshold=0.3))
    first = await store.assign([ev(i, 0) for i in range(4)])
    k = RedisKeys(prefix)
    await r.delete(k.story_index("TSLA"), k.story_versions("TSLA"), k.story_sums("TSLA"), k.story_meta("TSLA"),
                   k.story_state("TSLA"))  # as when the keys expire
    later = await store.assign([ev(i, 0) for i in range(4, 8)])
    assert None not in later and set(later).isdisjoint(first) and len(set(later)) == 1
    (story,) = await store.stories("TSLA")
    assert story["count"] == 4


async def test_topic_copies_are_capped_and_a_dropped_copy_reloads_with_the_same_stories(redis_prefix):
    """Topics are free-form: the worker keeps at most ``max_topics`` copies; a topic whose copy was
    dropped reloads it from Redis and goes on with the same stories as an uncapped worker."""
    r, prefix = redis_prefix
    items = stream(n_events=120, topics=("TSLA", "AAPL", "BTC", "XOM"))
    capped = RedisStories(r, prefix, StoryRules(), max_topics=2)
    got = await run_batches(capped, items)
    assert len(capped._copies) <= 2
    expected = await run_batches(InMemoryStories(StoryRules()), items)
    assert partition(got) == partition(expected)
