"""The pipeline's story stage: one ``assign`` per batch, the touched stories' snapshots (one round
trip), the stories behind an alert, and ``story_burst`` on them. docs/design.md, "Stories"."""
from __future__ import annotations

from collections import OrderedDict, defaultdict
from typing import Callable, Iterable, Sequence

import orjson

from workers.alerting.story_notes import story_annotation
from workers.alerts import StoryVerdict
from workers.detectors.story_burst import StoryBurst
from workers.stories import StoryAssigner, StoryItem
from workers.stories.redis_store import RedisStories
from workers.stories.view import story_view


class StoryStage:
    def __init__(self, store: StoryAssigner, burst: Callable[[], StoryBurst] | None = None,
                 rate_tau_s: float = 600.0, remember: int = 100_000, max_topics: int = 10_000) -> None:
        self.store = store
        # story_burst learns one topic's usual story growth: one detector per topic, in-process (it
        # needs only the rates of the topic's recent stories, which the worker sees as it touches
        # them; a restarted worker is cold again until min_stories stories were seen, docs/design.md)
        self.burst = burst
        self._bursts: OrderedDict[str, StoryBurst] = OrderedDict()
        self.max_topics = max_topics
        self.rate_tau_s = rate_tau_s
        # (topic, event id) -> story id of events this worker assigned: a batch retried here (the
        # store answers None for what it already applied) keeps its ids. Lost on restart.
        self._known: OrderedDict[tuple[str, str], str] = OrderedDict()
        self.remember = remember

    async def assign(self, items: Sequence[StoryItem]) -> list[str | None]:
        ids = list(await self.store.assign(items))
        known = self._known
        for i, (item, sid) in enumerate(zip(items, ids)):
            key = (item.topic, item.event_id)
            if sid is None:
                ids[i] = known.get(key)
            else:
                known[key] = sid
                known.move_to_end(key)
        while len(known) > self.remember:
            known.popitem(last=False)
        return ids

    def _detector(self, topic: str) -> StoryBurst:
        det = self._bursts.get(topic)
        if det is None:
            det = self._bursts[topic] = self.burst()
            while len(self._bursts) > self.max_topics:
                self._bursts.popitem(last=False)
        self._bursts.move_to_end(topic)
        return det

    async def snapshots(self, touched: dict[str, set[str]]) -> dict[tuple[str, str], dict]:
        """(topic, story id) -> its view now, for the stories a batch touched."""
        out: dict[tuple[str, str], dict] = {}
        if not touched:
            return out
        store = self.store
        if isinstance(store, RedisStories):
            topics = [(t, sorted(ids)) for t, ids in touched.items() if ids]
            pipe = store.redis.pipeline(transaction=False)
            for topic, ids in topics:
                pipe.hmget(store.keys.story_meta(topic), ids)
            for (topic, ids), raws in zip(topics, await pipe.execute()):
                for sid, raw in zip(ids, raws):
                    if raw is not None:  # an expired story is just not cited
                        out[(topic, sid)] = story_view(orjson.loads(raw), store.rules.rate_tau_s)
            return out
        for topic, ids in touched.items():
            for v in await store.stories(topic):
                if v["id"] in ids:
                    out[(topic, v["id"])] = v
        return out

    def bursts(self, views: dict[tuple[str, str], dict]) -> list[StoryVerdict]:
        """One verdict per topic: the fastest bursting story if any, else the calmest judgement
        (a calm verdict lets the topic's story_burst alert resolve, as the window detectors do)."""
        if self.burst is None:
            return []
        by_topic: dict[str, list[tuple[dict, object]]] = defaultdict(list)
        for (topic, _sid), v in sorted(views.items()):
            verdict = self._detector(topic).update(v)
            if verdict is not None:
                by_topic[topic].append((v, verdict))
        out = []
        for topic, judged in by_topic.items():
            hot = [(v, x) for v, x in judged if x.anomalous]
            v, verdict = max(hot or judged, key=lambda p: (p[1].score, p[0]["id"]))
            stories = tuple(story_annotation([v])) if verdict.anomalous else ()
            samples = tuple(r["id"] for s in stories for r in s["representatives"].values())[:5]
            out.append(StoryVerdict(topic, int(self.rate_tau_s), float(v["first_seen"]), verdict, stories, samples))
        return out


def series_stories(views: dict[tuple[str, str], dict], members: Iterable[tuple[str, str, str]],
                   all_langs: str) -> dict[tuple[str, str], tuple[dict, ...]]:
    """(topic, lang) and (topic, all) -> the alert annotation of the stories of the batch's events in
    that series (largest first, at most 3). ``members``: (topic, lang, story id) per scored event."""
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for topic, lang, sid in members:
        ids[(topic, lang)].add(sid)
        ids[(topic, all_langs)].add(sid)
    return {key: tuple(story_annotation(views[(key[0], sid)] for sid in sids if (key[0], sid) in views))
            for key, sids in ids.items()}
