"""Issue 8, point 4: offsets are tied to the broker's lifetime.

The in-memory local broker loses every topic and offset when it restarts, while Redis keeps the
offset ledger. Before, every new event (offsets from 0 again) was skipped as a "redelivery"; now the
ledger is keyed by topic id (workers/lifetimes.py) and the new lifetime counts from scratch.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest
import redis
import redis.asyncio as aioredis
from kafka import KafkaProducer

from babelwatch.localstack.broker import TansuBroker
from conftest import PipelineWorld
from test_end_to_end import consume
from workers.lifetimes import TopicLifetimes

pytestmark = pytest.mark.integration
WINDOW = 60


class _PrivateBroker:
    """The shared stack's Redis and Triton with a broker of this test's own, which it restarts."""

    def __init__(self, stack, broker: TansuBroker) -> None:
        self.broker, self.redis_url, self.triton_grpc_url = broker, stack.redis_url, stack.triton_grpc_url

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap


def _produce(bootstrap: str, topic: str, tag: str, n: int, ts: float) -> None:
    # idempotent: a retried send must not put a second copy in the log (that would look double-counted)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    for i in range(n):
        producer.send(topic, orjson.dumps({"id": f"{tag}-{i}", "source": "news", "topic": "LIFE", "lang": "en",
                                           "text": f"lifetime {tag} {i}", "ts": ts}))
    producer.flush()
    producer.close()


def _count(r: redis.Redis, prefix: str, start: int) -> int:
    return int(r.hget(f"{prefix}:w:{WINDOW}:LIFE:*:{start}", "count") or 0)


def _wait_count(r, prefix, start, want, timeout=90.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _count(r, prefix, start) < want:
        time.sleep(0.3)
    time.sleep(2)  # anything counted twice would show now
    return _count(r, prefix, start)


def test_a_restarted_in_memory_broker_loses_no_new_event(stack, tmp_path):
    broker = TansuBroker(run_dir=tmp_path / "b1").start()
    brokers = [broker]
    world = PipelineWorld(_PrivateBroker(stack, broker), tmp_path, triton_model="cheap", batch_size=50,
                          spike_min_count=10**9, commit_interval_s=1)
    r = redis.Redis.from_url(stack.redis_url)
    try:
        worker = world.start_worker("lifetime")
        ts = time.time() - 10
        start = int(ts // WINDOW * WINDOW)
        _produce(broker.bootstrap, world.topics["events"], "before", 200, ts)
        assert _wait_count(r, world.prefix, start, 200) == 200

        broker.stop()  # everything the broker held is gone: topics, data, committed offsets
        broker = TansuBroker(port=broker.port, run_dir=tmp_path / "b2").start()
        brokers.append(broker)
        world.stack.broker = broker
        broker.create_topics({world.topics["events"]: 4, world.topics["scored"]: 4, world.topics["closed_windows"]: 4,
                              world.topics["deadletter"]: 1, world.topics["late"]: 1, world.topics["alerts"]: 1})
        # the worker rejoins its group on the new broker and learns the topic's new id there; events
        # that reach the new broker before that are the residual race README names (the consumer
        # may go on fetching at its old position, and aiokafka does not send topic ids in Fetch)
        deadline = time.monotonic() + 60
        while "new lifetime" not in worker.log_tail(400) and time.monotonic() < deadline:
            time.sleep(0.2)
        _produce(broker.bootstrap, world.topics["events"], "after", 150, ts)
        got = _wait_count(r, world.prefix, start, 350, timeout=120)
        in_log = consume(broker.bootstrap, world.topics["events"], want=150, timeout=30)
        assert len(in_log) == 150 and len({e["id"] for e in in_log}) == 150
        changes = int(r.hget(f"{world.prefix}:stats", "topic_lifetime_changes") or 0)
        ledger = {k.decode() for k in r.hkeys(f"{world.prefix}:offsets")}
        assert got == 350, f"{350 - got} new events lost after the broker restart:\n{worker.log_tail(40)}"
        assert changes >= 1
        assert worker.alive
        assert "new lifetime" in worker.log_tail(400)
        ids = {k.split("#", 1)[1].split(":")[0] for k in ledger}
        assert len(ids) == 1, f"the old lifetime's ledger entries are gone, one id left: {ledger}"
    finally:
        world.stop()
        r.close()
        for b in brokers:
            b.stop()


def test_the_ledger_follows_topic_ids_in_redis():
    """The register script alone, on the real Redis: legacy entries move to the first id seen, a
    new id drops the old lifetime's entries and is counted."""
    prefix = f"bwtest-{uuid.uuid4().hex[:8]}"
    ids = {"events": "id-1"}

    async def describe(topics):
        return {t: ids.get(t) for t in topics}

    async def scenario():
        r = aioredis.from_url("redis://127.0.0.1:6379/0")
        try:
            await r.hset(f"{prefix}:offsets", mapping={"events:0": 41, "events:1": 7, "other:0": 3})
            life = TopicLifetimes(r, prefix, describe)
            assert await life.refresh(["events", "missing"]) == []
            first = await r.hgetall(f"{prefix}:offsets")
            assert life.source("events", 0) == "events#id-1:0" and life.source("missing", 0) == "missing:0"
            life.applied([("events", 0, 41)])
            assert life.went_back([("events", 0, 5)]) and not life.went_back([("events", 0, 42)])
            ids["events"] = "id-2"
            assert await life.refresh(["events"]) == ["events"]
            second = await r.hgetall(f"{prefix}:offsets")
            stats = await r.hget(f"{prefix}:stats", "topic_lifetime_changes")
            assert not life.went_back([("events", 0, 0)])  # the old lifetime's offsets are forgotten
            assert await life.refresh(["events"]) == []  # same id again: nothing changes
            return first, second, stats, life.source("events", 3)
        finally:
            keys = [k async for k in r.scan_iter(f"{prefix}:*")]
            if keys:
                await r.delete(*keys)
            await r.aclose()

    first, second, stats, source = asyncio.run(scenario())
    assert first == {b"events#id-1:0": b"41", b"events#id-1:1": b"7", b"other:0": b"3"}
    assert second == {b"other:0": b"3"}
    assert int(stats) == 1
    assert source == "events#id-2:3"
