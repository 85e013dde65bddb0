"""Stories in the worker pipeline, with the REAL fusion model in Triton (CPU) and the REAL Redis:
``Scored.story`` across languages, redelivery, the stories behind an alert, story_burst, and the
cheap model (no embeddings, no stories). Each test runs under its own Redis prefix, deleted on teardown."""
from __future__ import annotations

import bw_paths
import itertools
import time
import uuid
from collections import Counter, defaultdict

import orjson
import pytest
from bw_triton import served_models

from contracts.schema import ALL_LANGS
from contracts.settings import Settings
from workers.alerting.model import NotificationGroup
from workers.alerting.sinks.webhook import alertmanager_webhook, slack_message
from workers.pipeline import RawRecord
from workers.runtime import PipelineRuntime
from workers.story_stage import StoryStage
from workers.validate import Origin
from workers.windows import window_start

pytestmark = pytest.mark.integration

REPO = bw_paths.REPO
triton = pytest.fixture(scope="module")(served_models)  # a real tritonserver per module
REDIS_URL = "redis://127.0.0.1:6379/0"
WINDOW = 60
CORPUS = [orjson.loads(line) for line in (REPO / "fusion_model" / "corpora" / "stories.jsonl").read_bytes().splitlines()
          if line.strip()]
_OFFSETS = itertools.count(1000)


def story_rows(topic: str, story: str) -> list[dict]:
    return [r for r in CORPUS if r["topic"] == topic and r["story"] == story]


@pytest.fixture
async def start(triton):
    started = []

    async def _start(**overrides) -> PipelineRuntime:
        prefix = f"bwtest-{uuid.uuid4().hex}"
        rt = PipelineRuntime(Settings(triton_url=triton.grpc_url, redis_url=REDIS_URL, redis_prefix=prefix,
                                      window_s=WINDOW, **overrides))
        started.append((rt, prefix))
        await rt.start()
        return rt

    yield _start
    for rt, prefix in started:
        try:
            if rt.redis is not None:
                keys = [k async for k in rt.redis.scan_iter(match=f"{prefix}:*", count=1000)]
                if keys:
                    await rt.redis.delete(*keys)
        finally:
            await rt.stop()


def ev(row: dict, *, ts: float, id: str | None = None, topic: str | None = None) -> RawRecord:
    obj = {"id": id or row["id"], "source": row["source"], "topic": topic or row["topic"], "text": row["text"],
           "ts": ts, "lang": row["lang"]}
    return RawRecord(orjson.dumps(obj), Origin("babelwatch.events", 0, next(_OFFSETS)))


async def test_one_story_across_languages_and_redelivery(start):
    rt = await start()
    proc = rt.processor
    rows = story_rows("BTC", "btc-etf")
    records = [ev(r, ts=time.time() - 5) for r in rows]
    res = await proc.process(records)
    assert "stories" in res.timings
    by_story = defaultdict(set)
    for s in res.scored:
        assert s.story is not None, s
        by_story[s.story].add(s.lang)
    # (a) the same news in several languages: one story id spans >= 2 languages in the Scored records
    sid, langs = max(by_story.items(), key=lambda kv: len(kv[1]))
    assert len(langs) >= 2, by_story
    assert orjson.loads(res.scored[0].model_dump_json())["story"] == res.scored[0].story  # on the scored topic
    store = proc.stories.store
    counts = {s: (await store.story("BTC", s))["count"] for s in by_story}
    assert sum(counts.values()) == len(rows)

    # (b) the same batch redelivered (same offsets): nothing counts twice, the ids stay
    again = await proc.process(records)
    assert [s.story for s in again.scored] == [s.story for s in res.scored]
    assert {s: (await store.story("BTC", s))["count"] for s in by_story} == counts
    assert store.skipped_total == len(rows)
    # ... also on a worker that never saw it (no memory of the ids: documented, story None)
    other = StoryStage(type(store)(rt.redis, rt.settings.redis_prefix, store.rules))
    proc.stories = other
    third = await proc.process(records)
    assert [s.story for s in third.scored] == [None] * len(rows)
    assert {s: (await store.story("BTC", s))["count"] for s in by_story} == counts


async def test_alert_names_its_stories_with_texts_in_several_languages(start):
    rt = await start()
    proc = rt.processor
    S = window_start(time.time(), WINDOW)
    quiet = story_rows("AAPL", "aapl-car")
    for k in (3, 2, 1):
        await proc.process([ev(r, ts=S - k * WINDOW + 5, id=f"q{k}-{i}") for i, r in enumerate(quiet[:2])])
    burst_rows = story_rows("AAPL", "aapl-eu-fine")
    burst = [ev(r, ts=S + 1 + i % 30, id=f"b{i}") for i, r in zip(range(30), itertools.cycle(burst_rows))]
    res = await proc.process(burst)
    spikes = [a for a in res.alerts if a.labels["detector"] == "volume_spike" and a.labels["language"] == ALL_LANGS]
    assert len(spikes) == 1, res.alerts
    ann = spikes[0].annotations
    assert ann["sample_events"]  # ids stay
    stories = ann["stories"]
    assert 1 <= len(stories) <= 3
    assert [s["count"] for s in stories] == sorted((s["count"] for s in stories), reverse=True)
    batch_ids = {s.story for s in res.scored}
    assert {s["id"] for s in stories} <= batch_ids
    top = stories[0]
    reps = top["representatives"]
    assert len(reps) >= 2 and len(top["languages"]) >= 2
    texts = {r["text"] for r in burst_rows}
    assert all(rep["text"] in texts and rep["id"].startswith("b") for rep in reps.values())
    assert set(top["sentiment"]) == set(reps)
    # readable in the Alertmanager and Slack-style formats
    group = NotificationGroup(group_key="k", route_id="r", receivers=[], group_labels={"topic": "AAPL"},
                              status="firing", alerts=[spikes[0]], created_at=time.time())
    rendered = alertmanager_webhook(group, "hook")["alerts"][0]["annotations"]["stories"]
    slack = slack_message(group)["attachments"][0]["text"]
    for lang, rep in reps.items():
        assert f"] {rep['text']}" in rendered and rep["text"][:20] in slack
    assert f"Story 1 ({top['id']})" in rendered


async def test_story_burst_raises_its_own_alert(start):
    rt = await start()
    proc = rt.processor
    now = time.time()
    # the topic's usual: one event each for the other stories
    others = [next(r for r in CORPUS if r["topic"] == "TSLA" and r["story"] == st)
              for st in dict.fromkeys(r["story"] for r in CORPUS if r["topic"] == "TSLA" and r["story"] != "tsla-recall")]
    res = await proc.process([ev(r, ts=now - 300) for r in others])
    assert len({s.story for s in res.scored}) >= 6
    assert not [a for a in res.alerts if a.labels["detector"] == "story_burst"]
    recall = story_rows("TSLA", "tsla-recall")
    res = await proc.process([ev(r, ts=now, id=f"r{n}-{r['id']}") for n in range(3) for r in recall])
    bursts = [a for a in res.alerts if a.labels["detector"] == "story_burst"]
    assert len(bursts) == 1, res.alerts
    a = bursts[0]
    assert a.state == "firing"
    assert {k: a.labels[k] for k in ("topic", "detector", "language", "stage")} == {
        "topic": "TSLA", "detector": "story_burst", "language": ALL_LANGS, "stage": "open"}
    assert not any(v in {s.story for s in res.scored} for v in a.labels.values())  # the id is no label
    story = a.annotations["stories"][0]
    assert story["id"] in {s.story for s in res.scored} and len(story["representatives"]) >= 2
    assert set(a.annotations["sample_events"]) <= {s.id for s in res.scored}
    # judged once per story: the next batch of it raises nothing new
    res = await proc.process([ev(r, ts=now + 1, id=f"r9-{r['id']}") for r in recall])
    assert not [x for x in res.alerts if x.labels["detector"] == "story_burst" and x.state == "firing"]


async def test_cheap_model_runs_unchanged_without_stories(start):
    rt = await start(triton_model="cheap")
    res = await rt.processor.process([ev(r, ts=time.time() - 5) for r in story_rows("BTC", "btc-etf")])
    assert len(res.scored) == 6 and all(s.story is None for s in res.scored)
    assert "stories" not in res.timings
    assert Counter(a.labels["detector"] for a in res.alerts) == Counter()


async def test_stories_disabled(start):
    rt = await start(stories_enabled=False)
    assert rt.processor.stories is None
    res = await rt.processor.process([ev(r, ts=time.time() - 5) for r in story_rows("BTC", "btc-etf")])
    assert all(s.story is None for s in res.scored) and "stories" not in res.timings


async def test_hostile_rows_get_no_story_and_fail_only_themselves(start):
    import base64

    rt = await start()
    png = base64.b64encode(base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")).decode()
    t = time.time() - 5
    good = story_rows("BTC", "btc-etf")[:2]
    odd = [{"id": "emoji", "text": "🚀🚀🔥", "lang": "en"}, {"id": "long", "text": "Bitcoin ETF approved " * 400, "lang": "en"},
           {"id": "image-only", "text": "", "image_b64": png}]
    records = [ev(r, ts=t) for r in good] + [
        RawRecord(orjson.dumps({"source": "news", "topic": "BTC", "ts": t, **o}), Origin("babelwatch.events", 0, next(_OFFSETS)))
        for o in odd]
    res = await rt.processor.process(records)
    by_id = {s.id: s for s in res.scored}
    assert set(by_id) == {r["id"] for r in good} | {"emoji", "long", "image-only"} and res.dead == []
    assert by_id["emoji"].story is None and by_id["image-only"].story is None
    assert all(by_id[r["id"]].story for r in good) and by_id["long"].story is not None
    view = await rt.processor.stories.store.story("BTC", by_id["long"].story)
    assert all(len(rep["text"]) <= rt.settings.story_excerpt_chars for rep in view["representatives"].values())
