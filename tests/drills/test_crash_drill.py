"""Crash drill: workers are SIGKILLed mid-stream and restarted; window counts must stay exact.

Kafka delivery is at-least-once (a killed worker's uncommitted batch is delivered again), so the
exactness comes from the Redis sink: each window update is applied at most once per
(topic:partition, offset) inside one Lua script (workers/windows.lua).
"""
from __future__ import annotations

import random
import threading
import time
from collections import Counter

import orjson
import pytest
import redis
from kafka import KafkaProducer

pytestmark = pytest.mark.integration

WINDOW = 60
TOPICS = ["AAPL", "TSLA", "BTC", "NVDA"]
LANGS = ["en", "de", "fr", "zh"]


def produce_paced(bootstrap: str, topic: str, events: list[dict], seconds: float) -> threading.Thread:
    def run() -> None:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
        pause = seconds / len(events)
        for ev in events:
            producer.send(topic, orjson.dumps(ev))
            time.sleep(pause)
        producer.flush()
        producer.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def window_counts(r: redis.Redis, prefix: str, starts: set[int]) -> Counter:
    out: Counter = Counter()
    for topic in TOPICS:
        for lang in LANGS + ["*"]:
            for start in starts:
                n = r.hget(f"{prefix}:w:{WINDOW}:{topic}:{lang}:{start}", "count")
                if n is not None:
                    out[(topic, lang, start)] = int(n)
    return out


def wait_for(r, prefix, starts, expected, timeout: float) -> Counter:
    deadline = time.monotonic() + timeout
    got = Counter()
    while time.monotonic() < deadline:
        got = window_counts(r, prefix, starts)
        if sum(v for (t, l, s), v in got.items() if l == "*") >= sum(
            v for (t, l, s), v in expected.items() if l == "*"
        ):
            break
        time.sleep(0.5)
    time.sleep(3)  # anything double-counted late would show up now
    return window_counts(r, prefix, starts)


def make_events(n: int, seed: int) -> tuple[list[dict], Counter, set[int]]:
    rng = random.Random(seed)
    base = (time.time() // WINDOW) * WINDOW - 2 * WINDOW
    events, expected, starts = [], Counter(), set()
    for i in range(n):
        topic, lang = rng.choice(TOPICS), rng.choice(LANGS)
        ts = base + rng.uniform(0, 3 * WINDOW - 1)
        start = int(ts // WINDOW * WINDOW)
        events.append({"id": f"c{seed}-{i}", "source": "news", "topic": topic, "lang": lang,
                       "text": f"{topic} update number {i}", "ts": ts})
        expected[(topic, lang, start)] += 1
        expected[(topic, "*", start)] += 1
        starts.add(start)
    return events, expected, starts


def test_sigkill_restarts_lose_nothing_and_count_nothing_twice(world):
    # commits every 30 s: each kill leaves processed-but-uncommitted batches, so redelivery is certain
    w = world(triton_model="cheap", window_s=WINDOW, batch_size=50, spike_min_count=10**9, commit_interval_s=30)
    events, expected, starts = make_events(3000, seed=7)
    worker = w.start_worker("drill-0")
    producer = produce_paced(w.stack.bootstrap, w.topics["events"], events, seconds=12)
    rng = random.Random(11)
    kills = 0
    for round_ in range(3):
        time.sleep(rng.uniform(1.0, 3.0))
        worker.kill()
        kills += 1
        worker = w.start_worker(f"drill-{round_ + 1}")
    producer.join(60)
    r = redis.Redis.from_url(w.stack.redis_url)
    got = wait_for(r, w.prefix, starts, expected, timeout=120)
    offsets = r.hgetall(f"{w.prefix}:offsets")
    redelivered = int(r.hget(f"{w.prefix}:stats", "redelivered_skipped") or 0)
    r.close()
    assert kills == 3
    assert offsets, "offsets were recorded"
    assert redelivered > 0, "the drill must actually have redelivered events"
    missing = {k: v - got.get(k, 0) for k, v in expected.items() if got.get(k, 0) < v}
    doubled = {k: got[k] - v for k, v in expected.items() if got.get(k, 0) > v}
    assert not missing, f"lost: {missing}"
    assert not doubled, f"double-counted: {doubled}"
    assert got == expected


def test_two_workers_rebalance_after_one_is_killed(world):
    w = world(triton_model="cheap", window_s=WINDOW, batch_size=50, spike_min_count=10**9)
    events, expected, starts = make_events(2000, seed=8)
    a = w.start_worker("pair-a")
    b = w.start_worker("pair-b")
    producer = produce_paced(w.stack.bootstrap, w.topics["events"], events, seconds=8)
    time.sleep(3)
    a.kill()  # b takes over a's partitions and re-reads from a's last commit
    producer.join(60)
    r = redis.Redis.from_url(w.stack.redis_url)
    got = wait_for(r, w.prefix, starts, expected, timeout=120)
    r.close()
    assert b.alive
    assert got == expected


def outage_drill(w, name: str, seed: int, outage, recover, redis_url: str):
    """Stream 1500 paced events through a worker while ``outage()`` takes a dependency away for
    4 s and ``recover()`` brings it back. Returns (worker, expected counts, counts in Redis)."""
    events, expected, starts = make_events(1500, seed=seed)
    worker = w.start_worker(name)
    producer = produce_paced(w.stack.bootstrap, w.topics["events"], events, seconds=8)
    time.sleep(2.5)
    outage()
    time.sleep(4)  # the worker's batch waits for the dependency meanwhile
    alive_during_outage = worker.alive
    recover()
    producer.join(60)
    r = redis.Redis.from_url(redis_url)
    got = wait_for(r, w.prefix, starts, expected, timeout=120)
    r.close()
    return worker, alive_during_outage, expected, got
