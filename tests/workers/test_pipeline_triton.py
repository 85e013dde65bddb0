"""BatchProcessor end to end without Kafka, with a REAL Triton (CPU) and the REAL Redis.

One Triton server serves ``triton_repo/models`` (``fusion`` and ``cheap``) for the whole module and
is stopped on teardown. Each test builds the processor through ``PipelineRuntime`` exactly as the
worker does, under its own Redis prefix ``bwtest-<uuid>`` whose keys are deleted on teardown.
"""
from __future__ import annotations

import bw_paths
import base64
import math
import time
import uuid
from collections import Counter
from pathlib import Path

import itertools

import orjson
import pytest
from bw_triton import served_models

from babelwatch.localstack.triton import TritonServer
from contracts.schema import ALL_LANGS, LABELS, UNDETERMINED, DeadLetter
from contracts.settings import Settings
from workers.alerts import AlertHistory
from workers.pipeline import BatchProcessor, RawRecord
from workers.runtime import PipelineRuntime
from workers.validate import Origin
from workers.windows import window_start

REPO = bw_paths.REPO
triton = pytest.fixture(scope="module")(served_models)  # a real tritonserver per module
REDIS_URL = "redis://127.0.0.1:6379/0"
WINDOW = 60
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

NEGATIVE_EN = "I hate this, it is terrible and awful"
POSITIVE_EN = "I love it, absolutely wonderful and great"
GERMAN = "Das ist ein sehr schöner Tag und ich freue mich darüber sehr."
FRENCH = "Je suis très content de ce produit, il est vraiment magnifique."
NEGATIVE_ZH = "这个产品太差了，非常失望"


@pytest.fixture
def prefix() -> str:
    return f"bwtest-{uuid.uuid4().hex}"


async def _start(triton: TritonServer, prefix: str, **overrides):
    settings = Settings(
        triton_url=triton.grpc_url, redis_url=REDIS_URL, redis_prefix=prefix, window_s=WINDOW, **overrides
    )
    rt = PipelineRuntime(settings)
    try:
        await rt.start()
    except BaseException:
        await rt.stop()
        raise
    return rt


async def _teardown(rt: PipelineRuntime, prefix: str) -> None:
    try:
        if rt.redis is not None:
            keys = [k async for k in rt.redis.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await rt.redis.delete(*keys)
    finally:
        await rt.stop()


@pytest.fixture
async def runtime(triton, prefix):
    rt = await _start(triton, prefix)
    try:
        yield rt
    finally:
        await _teardown(rt, prefix)


def ev(id: str, text: str = "", *, topic: str = "TSLA", ts: float, lang: str | None = None, **extra) -> RawRecord:
    obj = {"id": id, "source": "social", "topic": topic, "text": text, "ts": ts, **extra}
    if lang is not None:
        obj["lang"] = lang
    # offsets grow like a real partition's; window updates skip offsets already applied
    return RawRecord(orjson.dumps(obj), Origin("babelwatch.events", 0, next(_OFFSETS)))


_OFFSETS = itertools.count(1000)


def assert_well_formed(scored) -> None:
    for s in scored:
        p = s.probabilities
        assert set(p) == set(LABELS)
        assert all(0.0 <= v <= 1.0 for v in p.values())
        assert math.isclose(sum(p.values()), 1.0, abs_tol=1e-5), p
        assert s.label == max(LABELS, key=lambda k: p[k])
        assert s.sentiment == pytest.approx(p["positive"] - p["negative"])
        assert -1.0 <= s.sentiment <= 1.0


async def test_batch_end_to_end(runtime):
    proc: BatchProcessor = runtime.processor
    S = window_start(time.time(), WINDOW)
    t = S + 1
    img = base64.b64encode(PNG_1PX).decode()
    records = [
        ev("neg-en", NEGATIVE_EN, ts=t, lang="en"),
        ev("pos-en", POSITIVE_EN, ts=t, lang="EN-us"),
        ev("de-auto", GERMAN, ts=t),
        ev("fr-auto", FRENCH, ts=t, topic="AAPL"),
        ev("zh-tag", NEGATIVE_ZH, ts=t, lang="zh", topic="AAPL"),
        ev("img-only", ts=t, image_b64=img, topic="AAPL"),
        RawRecord(b"{not json", Origin("babelwatch.events", 2, 100)),
        RawRecord(orjson.dumps({"id": "no-topic", "source": "news", "text": "x", "ts": t}),
                  Origin("babelwatch.events", 2, 101)),
        RawRecord(b'[{"id": "array"}]', Origin("babelwatch.events", 3, 102)),
        RawRecord(orjson.dumps({"id": "bad-lang", "source": "news", "topic": "T", "text": "x", "ts": t,
                                "lang": "not a lang!!"}), Origin("babelwatch.events", 3, 103)),
    ]
    result = await proc.process(records)

    # every valid event exactly once, nothing else
    ids = Counter(s.id for s in result.scored)
    assert ids == Counter(["neg-en", "pos-en", "de-auto", "fr-auto", "zh-tag", "img-only"])
    assert_well_formed(result.scored)
    by_id = {s.id: s for s in result.scored}
    for s in result.scored:
        assert s.model == "fusion:1"
        assert s.ts == t
        assert s.source == "social"
        assert abs(s.scored_at - time.time()) < 60

    # languages: given tags keep their primary subtag, missing ones are detected
    assert (by_id["neg-en"].lang, by_id["neg-en"].lang_detected) == ("en", False)
    assert (by_id["pos-en"].lang, by_id["pos-en"].lang_detected) == ("en", False)
    assert (by_id["zh-tag"].lang, by_id["zh-tag"].lang_detected) == ("zh", False)
    assert (by_id["de-auto"].lang, by_id["de-auto"].lang_detected) == ("de", True)
    assert (by_id["fr-auto"].lang, by_id["fr-auto"].lang_detected) == ("fr", True)
    assert (by_id["img-only"].lang, by_id["img-only"].lang_detected) == (UNDETERMINED, True)

    # sentiment of unambiguous sentences
    assert by_id["neg-en"].label == "negative" and by_id["neg-en"].sentiment < -0.5
    assert by_id["pos-en"].label == "positive" and by_id["pos-en"].sentiment > 0.5
    assert by_id["zh-tag"].label == "negative" and by_id["zh-tag"].sentiment < -0.5
    assert "text" in by_id["neg-en"].modalities
    assert "text" not in by_id["img-only"].modalities  # there was no text to use

    # dead letters, with their origin
    dead = {(d.partition, d.offset): d for d in result.dead}
    assert len(result.dead) == 4
    assert dead[(2, 100)].reason == "not_json"
    assert dead[(2, 101)].reason == "invalid_event" and dead[(2, 101)].event_id == "no-topic"
    assert [e["loc"] for e in dead[(2, 101)].errors] == ["topic"]
    assert dead[(3, 102)].reason == "not_object"
    assert dead[(3, 103)].reason == "invalid_event" and [e["loc"] for e in dead[(3, 103)].errors] == ["lang"]
    assert all(isinstance(d, DeadLetter) and d.source_topic == "babelwatch.events" for d in result.dead)

    # Redis windows hold exactly this batch
    expected = Counter()
    for s in result.scored:
        expected[(s.topic, s.lang)] += 1
        expected[(s.topic, ALL_LANGS)] += 1
    assert {(w.topic, w.lang): w.count for w in result.windows} == dict(expected)
    assert all(w.start == S and w.history == (None,) * 5 for w in result.windows)
    for (topic, lang), n in expected.items():
        stored = await proc.windows.read(topic, lang, S)
        assert stored["count"] == n
        members = [s for s in result.scored if s.topic == topic and lang in (s.lang, ALL_LANGS)]
        for label in LABELS:
            assert stored.get(label, 0.0) == sum(s.label == label for s in members)
        assert stored["sentiment_sum"] == pytest.approx(sum(s.sentiment for s in members), abs=1e-6)
    assert await proc.windows.topics() == ["AAPL", "TSLA"]
    assert result.alerts == []  # cold start

    # seconds per stage, one timer per stage and batch (the worker's metrics read them)
    assert set(result.timings) == {"validate", "images", "language", "score", "windows", "stories", "detect"}
    assert all(0 <= t < 60 for t in result.timings.values())


async def test_only_invalid_records(runtime):
    result = await runtime.processor.process([RawRecord(b"nope"), RawRecord(b"[]"), RawRecord(b"{}")])
    assert [d.reason for d in result.dead] == ["not_json", "not_object", "invalid_event"]
    assert result.scored == [] and result.windows == [] and result.alerts == []
    assert await runtime.processor.windows.topics() == []


async def test_volume_spike_alerts_once(runtime):
    proc: BatchProcessor = runtime.processor
    S = window_start(time.time(), WINDOW)
    texts = [POSITIVE_EN, NEGATIVE_EN, "Tesla deliveries announced today"]
    # three quiet windows before the current one
    for k in (3, 2, 1):
        quiet = [ev(f"q{k}-{i}", texts[i % 3], ts=S - k * WINDOW + 5 + i, lang="en") for i in range(2)]
        res = await proc.process(quiet)
        assert len(res.scored) == 2 and res.alerts == []

    # a burst in the current window, spread over three languages: only the all-language
    # window is big enough (min_count 20) to alert
    langs = ["en", "de", "fr"]
    burst = [ev(f"b-{i}", texts[i % 3], ts=S + 1 + i % 50, lang=langs[i % 3]) for i in range(30)]
    res = await proc.process(burst)
    assert len(res.scored) == 30
    assert len(res.alerts) == 1, res.alerts
    alert = res.alerts[0]
    assert alert.state == "firing"
    assert alert.labels == {"detector": "volume_spike", "topic": "TSLA", "language": ALL_LANGS,
                            "window": f"{WINDOW}s", "severity": "critical", "stage": "open"}
    ann = alert.annotations
    assert ann["window_start"] == float(S)
    assert ann["value"] == 30.0 and ann["baseline"] == 2.0
    assert ann["score"] >= ann["threshold"] == 4.0
    assert set(ann["sample_events"]) <= {f"b-{i}" for i in range(30)} and ann["sample_events"]
    star = next(w for w in res.windows if w.lang == ALL_LANGS)
    assert star.history == (None, None, 2, 2, 2)
    history = AlertHistory(runtime.redis, runtime.settings.redis_prefix)
    assert [a.fingerprint for a in await history.history()] == [alert.fingerprint]
    assert [a.fingerprint for a in await runtime.alert_state.active()] == [alert.fingerprint]

    # the window keeps growing: no second alert for it
    more = [ev(f"m-{i}", texts[i % 3], ts=S + 2, lang=langs[i % 3]) for i in range(12)]
    res2 = await proc.process(more)
    assert len(res2.scored) == 12
    assert res2.alerts == []
    assert next(w for w in res2.windows if w.lang == ALL_LANGS).count == 42

    # a straggler for the window before changes nothing about the alert on the newer one
    res3 = await proc.process([ev("straggler", texts[0], ts=S - WINDOW + 30, lang="en")])
    assert len(res3.scored) == 1 and res3.alerts == []


async def test_volume_spike_resolves_when_the_next_window_is_calm(triton, prefix):
    rt = await _start(triton, prefix, alert_keep_firing_for_s=0)
    try:
        proc = rt.processor
        S = window_start(time.time(), WINDOW)
        for k in (3, 2, 1):
            await proc.process([ev(f"q{k}-{i}", NEGATIVE_EN, topic="ETH", ts=S - k * WINDOW + 1, lang="en")
                                for i in range(2)])
        res = await proc.process([ev(f"b{i}", NEGATIVE_EN, topic="ETH", ts=S + 1, lang="en") for i in range(30)])
        fired = {a.labels["language"]: a for a in res.alerts}
        assert set(fired) == {ALL_LANGS, "en"} and all(a.state == "firing" for a in fired.values())
        assert len(await rt.alert_state.active()) == 2
        # the next window (event time) starts calm: both alerts resolve
        res2 = await proc.process([ev("calm", NEGATIVE_EN, topic="ETH", ts=S + WINDOW + 1, lang="en")])
        assert sorted((a.state, a.fingerprint) for a in res2.alerts) == sorted(
            ("resolved", a.fingerprint) for a in fired.values())
        assert all(a.resolved_at is not None and a.fired_at is not None for a in res2.alerts)
        assert await rt.alert_state.active() == []
        history = await AlertHistory(rt.redis, prefix).history()
        assert [a.state for a in history] == ["resolved"] * 2 + ["firing"] * 2
    finally:
        await _teardown(rt, prefix)


async def test_single_language_spike_alerts_for_the_language_and_for_all(runtime):
    """Per design one alert per (detector, topic, language, window shape): a one-language burst
    shows up in both its language's window and the all-language window."""
    proc = runtime.processor
    S = window_start(time.time(), WINDOW)
    for k in (3, 2, 1):
        await proc.process([ev(f"q{k}", NEGATIVE_EN, topic="BTC", ts=S - k * WINDOW + 1, lang="en")])
    res = await proc.process([ev(f"b{i}", NEGATIVE_EN, topic="BTC", ts=S + 1, lang="en") for i in range(25)])
    assert sorted(a.labels["language"] for a in res.alerts) == sorted([ALL_LANGS, "en"])
    assert len({a.fingerprint for a in res.alerts}) == 2 and all(a.state == "firing" for a in res.alerts)
    res2 = await proc.process([ev("late", NEGATIVE_EN, topic="BTC", ts=S + 2, lang="en")])
    assert res2.alerts == []


async def test_cheap_model_and_chunking(triton, prefix):
    """Another model name through the same client; 300 events exceed max_batch_size (128),
    so the batch is split into concurrent chunks whose answers must come back in order."""
    rt = await _start(triton, prefix, triton_model="cheap")
    try:
        proc = rt.processor
        assert rt.scorer.model_id == "cheap:1"
        assert rt.scorer.max_batch_size == 128
        S = window_start(time.time(), WINDOW)
        texts = ["x" * (1 + i % 23) for i in range(300)]
        result = await proc.process(
            [ev(f"c{i}", texts[i], topic="NVDA", ts=S + 1, lang="en") for i in range(300)]
        )
        assert [s.id for s in result.scored] == [f"c{i}" for i in range(300)]
        assert_well_formed(result.scored)
        for s, text in zip(result.scored, texts):
            assert s.model == "cheap:1"
            pos = (len(text.encode()) % 7) / 10.0 + 0.1  # the cheap model's formula
            assert s.probabilities["positive"] == pytest.approx(pos, abs=1e-6)
            assert s.probabilities["neutral"] == pytest.approx(0.2, abs=1e-6)
            assert s.probabilities["negative"] == pytest.approx(0.8 - pos, abs=1e-6)
            assert s.modalities == ["text"]
        assert (await proc.windows.read("NVDA", ALL_LANGS, S))["count"] == 300
    finally:
        await _teardown(rt, prefix)
