"""WindowStore and the alert lifecycle/history against the real Redis on 127.0.0.1:6379 (no mocks).

Every test works under its own key prefix ``bwtest-<uuid>`` and deletes its keys on teardown.
Round trips are counted with thin subclasses of the real client: the pipeline's ``execute``, any
command sent directly (the window script is one EVALSHA), and every write to the socket.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict

import pytest
import redis.asyncio as aioredis
from bw_factories import make_scored
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection

from contracts.schema import ALL_LANGS, LABELS
from workers.alerting.lifecycle import AlertLifecycle, Timing
from workers.alerting.state_store import RedisAlertStateStore
from workers.alerts import STAGE_OPEN, AlertEvaluator, AlertHistory, WindowVerdict
from workers.detectors.base import Verdict
from workers.windows import WindowState, WindowStore, window_start

REDIS_URL = "redis://127.0.0.1:6379/0"
SIZE = 60


class CountingPipeline(Pipeline):
    owner: "CountingRedis"

    async def execute(self, raise_on_error: bool = True):
        self.owner.executes.append((self.is_transaction, len(self.command_stack)))
        return await super().execute(raise_on_error)


class CountingRedis(aioredis.Redis):
    """The real asyncio client, recording pipeline executions and direct commands."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.executes: list[tuple[bool, int]] = []
        self.direct: list[str] = []

    async def execute_command(self, *args, **options):
        self.direct.append(str(args[0]))
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint=None) -> CountingPipeline:
        p = CountingPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        p.owner = self
        return p

    def reset_counts(self) -> None:
        self.executes.clear()
        self.direct.clear()
        SOCKET_WRITES.clear()


SOCKET_WRITES: list[int] = []


class CountingConnection(Connection):
    async def send_packed_command(self, command, check_health: bool = True) -> None:
        SOCKET_WRITES.append(1)
        return await super().send_packed_command(command, check_health)


@pytest.fixture
def prefix() -> str:
    return f"bwtest-{uuid.uuid4().hex}"


async def _cleanup(client, prefix: str) -> None:
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)


@pytest.fixture
async def r(prefix):
    client = CountingRedis.from_url(REDIS_URL, connection_class=CountingConnection)
    await client.ping()
    try:
        yield client
    finally:
        await _cleanup(client, prefix)
        assert not [k async for k in client.scan_iter(match=f"{prefix}:*")]
        await client.aclose()


@pytest.fixture
def store(r, prefix) -> WindowStore:
    return WindowStore(r, size_s=SIZE, retention=10, prefix=prefix, history=5)


def now_window() -> int:
    return window_start(time.time(), SIZE)


def expected_windows(batch, size=SIZE):
    """Hand-computed (topic, lang, start) -> (count, labels, sentiment_sum), independent of fold()."""
    out = defaultdict(lambda: [0, Counter(), 0.0])
    for s in batch:
        start = int(s.ts) - int(s.ts) % size
        for lang in (s.lang, ALL_LANGS):
            w = out[(s.topic, lang, start)]
            w[0] += 1
            w[1][s.label] += 1
            w[2] += s.sentiment
    return out


async def assert_redis_matches(store: WindowStore, expected) -> None:
    for (topic, lang, start), (count, labels, ssum) in expected.items():
        got = await store.read(topic, lang, start)
        assert got["count"] == count, (topic, lang, start)
        for label in LABELS:
            assert got.get(label, 0.0) == labels[label], (topic, lang, start, label)
        assert got["sentiment_sum"] == pytest.approx(ssum, abs=1e-9)


# --- apply --------------------------------------------------------------------------------------

async def test_apply_counts_labels_and_sums_per_lang_and_all(store):
    S = now_window()
    batch = [
        make_scored("AAPL", "en", "positive", S + 1, sentiment=0.75),
        make_scored("AAPL", "en", "negative", S + 2, sentiment=-0.5),
        make_scored("AAPL", "en", "positive", S + 3, sentiment=0.25),
        make_scored("AAPL", "de", "neutral", S + 4, sentiment=0.125),
        make_scored("AAPL", "und", "negative", S + 5, sentiment=-1.0),
        make_scored("BTC", "zh", "positive", S + 59, sentiment=0.5),
    ]
    states = await store.apply(batch)
    expected = expected_windows(batch)
    assert len(expected) == 6  # AAPL en/de/und/*, BTC zh/*
    assert {(w.topic, w.lang, w.start) for w in states} == set(expected)
    for w in states:
        count, _, ssum = expected[(w.topic, w.lang, w.start)]
        assert isinstance(w, WindowState)
        assert w.size_s == SIZE
        assert w.count == count
        assert w.sentiment_sum == pytest.approx(ssum)
        assert w.history == (None,) * 5
    await assert_redis_matches(store, expected)
    # spot-check the raw hash layout
    raw = await store.redis.hgetall(store.key("AAPL", ALL_LANGS, S))
    assert raw[b"count"] == b"5"
    assert raw[b"positive"] == b"2" and raw[b"negative"] == b"2" and raw[b"neutral"] == b"1"
    assert float(raw[b"sentiment_sum"]) == pytest.approx(-0.375)


async def test_second_apply_accumulates(store):
    S = now_window()
    first = [make_scored("TSLA", "en", "positive", S + i, sentiment=0.5) for i in range(3)]
    second = [make_scored("TSLA", "en", "negative", S + 10, sentiment=-0.25),
              make_scored("TSLA", "fr", "neutral", S + 11, sentiment=0.0)]
    await store.apply(first)
    states = await store.apply(second)
    by_lang = {w.lang: w for w in states}
    assert set(by_lang) == {"en", "fr", ALL_LANGS}
    assert by_lang["en"].count == 4 and by_lang["en"].sentiment_sum == pytest.approx(1.25)
    assert by_lang["fr"].count == 1
    assert by_lang[ALL_LANGS].count == 5 and by_lang[ALL_LANGS].sentiment_sum == pytest.approx(1.25)
    await assert_redis_matches(store, expected_windows(first + second))


async def test_concurrent_applies_do_not_lose_updates(store):
    S = now_window()
    batch = [make_scored("NVDA", "en", "positive", S + 1, sentiment=0.5) for _ in range(10)]
    await asyncio.gather(*(store.apply(batch) for _ in range(8)))
    got = await store.read("NVDA", ALL_LANGS, S)
    assert got["count"] == 80 and got["positive"] == 80
    assert got["sentiment_sum"] == pytest.approx(40.0)


async def test_batch_straddling_a_boundary_updates_two_windows(store):
    S = now_window()
    batch = [make_scored("BTC", "en", "negative", S - 0.001, sentiment=-1.0),
             make_scored("BTC", "en", "positive", S, sentiment=1.0)]
    states = await store.apply(batch)
    assert {(w.lang, w.start, w.count) for w in states} == {
        ("en", S - SIZE, 1), (ALL_LANGS, S - SIZE, 1), ("en", S, 1), (ALL_LANGS, S, 1),
    }
    # the later window sees the earlier one, written in the same round trip, in its history
    later = next(w for w in states if w.lang == ALL_LANGS and w.start == S)
    assert later.history[-1] == 1
    await assert_redis_matches(store, expected_windows(batch))


async def test_history_returns_previous_counts_oldest_first(store):
    S = now_window()
    await store.apply([make_scored("AAPL", "en", "neutral", S - 4 * SIZE + 5)] * 2)
    await store.apply([make_scored("AAPL", "de", "neutral", S - 2 * SIZE + 5)] * 3)
    await store.apply([make_scored("AAPL", "en", "neutral", S - 1 * SIZE + 5)] * 4)
    states = await store.apply([make_scored("AAPL", "en", "positive", S + 1)])
    by_lang = {w.lang: w for w in states}
    # windows S-5, S-4, S-3, S-2, S-1 (None: no key was ever written)
    assert by_lang["en"].history == (None, 2, None, None, 4)
    assert by_lang[ALL_LANGS].history == (None, 2, None, 3, 4)
    assert by_lang["en"].count == 1


async def test_history_length_follows_the_setting(r, prefix):
    store = WindowStore(r, size_s=SIZE, retention=10, prefix=prefix, history=2)
    S = now_window()
    await store.apply([make_scored("X", "en", "neutral", S - 3 * SIZE)])
    await store.apply([make_scored("X", "en", "neutral", S - 1 * SIZE)] * 2)
    (w,) = [w for w in await store.apply([make_scored("X", "en", "neutral", S)]) if w.lang == "en"]
    assert w.history == (None, 2)


async def test_ttl_is_set(store):
    S = now_window()
    await store.apply([make_scored("AAPL", "en", "positive", S + 1)])
    limit = store.size_s * store.retention
    for lang in ("en", ALL_LANGS):
        ttl = await store.redis.ttl(store.key("AAPL", lang, S))
        assert 0 < ttl <= limit
        assert ttl >= limit - 5


async def test_ttl_is_refreshed_by_a_later_apply(store):
    S = now_window()
    key = store.key("AAPL", "en", S)
    await store.apply([make_scored("AAPL", "en", "positive", S + 1)])
    await store.redis.expire(key, 5)
    await store.apply([make_scored("AAPL", "en", "positive", S + 2)])
    assert await store.redis.ttl(key) > 5


async def test_series_is_oldest_first(store):
    S = now_window()
    await store.apply([make_scored("TSLA", "en", "positive", S - 3 * SIZE + 1, sentiment=0.5)] * 3)
    await store.apply([make_scored("TSLA", "en", "negative", S - 1 * SIZE + 1, sentiment=-0.5)] * 2)
    await store.apply([make_scored("TSLA", "en", "neutral", S + 1, sentiment=0.0)])
    series = await store.series("TSLA", "en", S + 30, 5)
    assert [start for start, _ in series] == [S - 4 * SIZE, S - 3 * SIZE, S - 2 * SIZE, S - SIZE, S]
    assert series[0][1] == {}
    assert series[1][1]["count"] == 3 and series[1][1]["positive"] == 3
    assert series[1][1]["sentiment_sum"] == pytest.approx(1.5)
    assert series[2][1] == {}
    assert series[3][1]["count"] == 2 and series[3][1]["negative"] == 2
    assert series[4][1]["count"] == 1 and series[4][1]["neutral"] == 1
    assert all(isinstance(v, float) for _, d in series for v in d.values())


async def test_series_is_one_round_trip(store):
    S = now_window()
    await store.apply([make_scored("TSLA", "en", "positive", S)])
    store.redis.reset_counts()
    await store.series("TSLA", "en", S, 10)
    assert len(store.redis.executes) == 1
    assert store.redis.direct == []
    assert len(SOCKET_WRITES) == 1


async def test_topics_and_langs_index(store):
    S = now_window()
    assert await store.topics() == []
    await store.apply([make_scored("TSLA", "en", "positive", S), make_scored("AAPL", "de", "neutral", S),
                       make_scored("AAPL", "zh", "negative", S), make_scored("AAPL", "de", "neutral", S)])
    assert await store.topics() == ["AAPL", "TSLA"]
    assert await store.langs("AAPL") == sorted([ALL_LANGS, "de", "zh"])
    assert await store.langs("TSLA") == sorted([ALL_LANGS, "en"])
    assert await store.langs("BTC") == []


async def test_apply_is_one_round_trip(store):
    S = now_window()
    batch = [make_scored(t, l, lab, S + i % 60, sentiment=0.1)
             for i, (t, l, lab) in enumerate([("A", "en", "positive"), ("A", "de", "negative"),
                                              ("B", "zh", "neutral"), ("B", "zh", "positive")] * 5)]
    batch.append(make_scored("A", "en", "negative", S + SIZE + 1))  # and a second window
    await store.apply([make_scored("W", "en", "neutral", S)])  # a first call may load the script
    store.redis.reset_counts()
    SOCKET_WRITES.clear()
    states = await store.apply(batch)
    assert len(states) == len(expected_windows(batch)) == 7
    # one server-side script: atomic, so counts, offsets and history are read consistently
    assert store.redis.direct == ["EVALSHA"], "apply must be exactly one script call"
    assert store.redis.executes == []
    assert len(SOCKET_WRITES) == 1, f"{len(SOCKET_WRITES)} writes to the socket for one apply"


async def test_apply_empty_batch_sends_nothing(store):
    store.redis.reset_counts()
    assert await store.apply([]) == []
    assert store.redis.executes == [] and store.redis.direct == [] and SOCKET_WRITES == []


async def test_works_with_decode_responses(prefix):
    client = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        store = WindowStore(client, size_s=SIZE, retention=10, prefix=prefix)
        S = now_window()
        await store.apply([make_scored("AAPL", "en", "positive", S - SIZE, sentiment=0.5)])
        states = await store.apply([make_scored("AAPL", "en", "negative", S, sentiment=-0.5)] * 2)
        w = next(w for w in states if w.lang == "en")
        assert w.count == 2 and w.sentiment_sum == pytest.approx(-1.0)
        assert w.history[-1] == 1
        assert (await store.read("AAPL", "en", S))["negative"] == 2.0
        assert await store.topics() == ["AAPL"]
        assert await store.langs("AAPL") == [ALL_LANGS, "en"]
        assert (await store.series("AAPL", "en", S, 2))[0][1]["count"] == 1.0
    finally:
        await _cleanup(client, prefix)
        await client.aclose()


async def test_prefixes_isolate_stores(r, prefix):
    other = f"{prefix}:other"  # still under this test's prefix, so teardown removes it
    a = WindowStore(r, size_s=SIZE, prefix=prefix)
    b = WindowStore(r, size_s=SIZE, prefix=other)
    S = now_window()
    await a.apply([make_scored("AAPL", "en", "positive", S)])
    states = await b.apply([make_scored("AAPL", "en", "positive", S)])
    assert all(w.count == 1 for w in states)
    assert (await a.read("AAPL", ALL_LANGS, S))["count"] == 1


# --- alert lifecycle and history (workers/alerts.py) -------------------------------------------

def _verdict(start: int, topic: str = "TSLA", lang: str = ALL_LANGS, score: float = 12.6) -> WindowVerdict:
    v = Verdict("volume_spike", score, 4.0, 50.0, 10.0, score >= 4.0, "50 events")
    return WindowVerdict(topic, lang, SIZE, start, v, STAGE_OPEN)


def _evaluator(r, prefix: str) -> AlertEvaluator:
    return AlertEvaluator(AlertLifecycle(RedisAlertStateStore(r, prefix, history_len=3), Timing(0.0, 0.0, 300.0)))


async def test_alert_fires_once_while_its_window_grows(r, prefix):
    ev = _evaluator(r, prefix)
    S = now_window()
    [alert] = await ev.evaluate([_verdict(S)])
    assert alert.state == "firing"
    assert await ev.evaluate([_verdict(S)]) == []  # the same window, judged again by a later batch
    ttl = await r.ttl(f"{prefix}:alert:{alert.fingerprint}")
    assert ttl > 0
    assert [a.fingerprint for a in await AlertHistory(r, prefix).history()] == [alert.fingerprint]


async def test_alert_lifecycle_is_one_round_trip_per_batch(r, prefix):
    ev = _evaluator(r, prefix)
    S = now_window()
    await ev.evaluate([_verdict(S)])
    r.reset_counts()
    got = await ev.evaluate([_verdict(S), _verdict(S, lang="en"), _verdict(S + SIZE, topic="AAPL", score=1.0)])
    assert [a.labels["language"] for a in got] == ["en"]
    assert len(r.executes) + len(r.direct) == 1  # one EVALSHA for the whole batch


async def test_alert_history_newest_first_capped_in_one_round_trip(r, prefix):
    ev = _evaluator(r, prefix)
    S = now_window()
    fired = [(await ev.evaluate([_verdict(S, topic=t)]))[0] for t in ("A", "B", "C", "D")]
    history = AlertHistory(r, prefix)
    assert [a.labels["topic"] for a in await history.history()] == ["D", "C", "B"]  # history_len 3
    assert (await history.history(1))[0].fingerprint == fired[-1].fingerprint
    r.reset_counts()
    [e] = await ev.evaluate([_verdict(S, topic="E")])  # the history entry rides in the commit script
    assert len(r.executes) + len(r.direct) == 1
    assert [a.fingerprint for a in await history.history(1)] == [e.fingerprint]
    r.reset_counts()
    assert await ev.evaluate([]) == []
    assert r.executes == [] and r.direct == []


async def test_alert_fires_once_across_workers(r, prefix):
    """Two workers (two lifecycles, two connections) never both notify the same transition."""
    other = aioredis.from_url(REDIS_URL)
    try:
        S = now_window()
        results = await asyncio.gather(_evaluator(r, prefix).evaluate([_verdict(S)]),
                                       _evaluator(other, prefix).evaluate([_verdict(S)]))
        assert sorted(len(x) for x in results) == [0, 1]
        calm = await asyncio.gather(_evaluator(r, prefix).evaluate([_verdict(S + SIZE, score=0.5)]),
                                    _evaluator(other, prefix).evaluate([_verdict(S + SIZE, score=0.5)]))
        assert sorted(len(x) for x in calm) == [0, 1]
        assert [a.state for x in calm for a in x] == ["resolved"]
    finally:
        await other.aclose()


# --- effectively-once: redelivered offsets are not counted twice -----------------------------------

async def test_redelivered_batch_is_not_counted_twice(store):
    S = now_window()
    batch = [make_scored("A", "en", "positive", S + 1) for _ in range(10)]
    positions = [("events:0", 100 + i) for i in range(10)]
    await store.apply(batch, positions)
    states = await store.apply(batch, positions)  # the same batch again, e.g. after a crash
    assert states == []  # nothing new: no window touched, nothing for detectors to re-judge
    assert (await store.read("A", "en", window_start(S, SIZE)))["count"] == 10
    assert (await store.read("A", ALL_LANGS, window_start(S, SIZE)))["count"] == 10
    assert store.applied_total == 10 and store.skipped_total == 10


async def test_partially_overlapping_redelivery_counts_each_offset_once(store):
    """A restarted consumer re-reads from its last commit with other batch boundaries."""
    S = now_window()
    first = [(("events:1", o), make_scored("A", "de", "negative", S + 2)) for o in range(100, 111)]
    again = [(("events:1", o), make_scored("A", "de", "negative", S + 2)) for o in range(105, 121)]
    other = [(("events:2", o), make_scored("A", "de", "negative", S + 2)) for o in range(0, 5)]
    await store.apply([s for _, s in first], [p for p, _ in first])
    states = await store.apply([s for _, s in again + other], [p for p, _ in again + other])
    counts = {w.lang: w.count for w in states}
    assert counts == {"de": 21 + 5, "*": 21 + 5}  # offsets 100..120 once each, plus partition 2
    assert store.skipped_total == 6  # 105..110 were applied before


async def test_events_without_position_are_always_applied(store):
    S = now_window()
    batch = [make_scored("B", "fr", "neutral", S + 3) for _ in range(3)]
    await store.apply(batch, [None, None, None])
    states = await store.apply(batch)
    assert {w.count for w in states} == {6}


async def test_skipped_redeliveries_are_counted_in_stats(store):
    S = now_window()
    batch = [make_scored("C", "en", "neutral", S + 1) for _ in range(4)]
    pos = [("events:9", i) for i in range(4)]
    await store.apply(batch, pos)
    await store.apply(batch, pos)
    assert int(await store.redis.hget(f"{store.keys.prefix}:stats", "redelivered_skipped")) == 4
