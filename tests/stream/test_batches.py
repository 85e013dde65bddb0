"""The batch source (stream/batches.py) against the real broker: where a group starts (its own
commit, else the legacy Faust group's), per-partition order, what observers and ``lag()`` see, and
that grouped produce keeps each key on the partition ``send()`` gives it."""
from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import TopicPartition

from contracts.settings import get_settings
from stream import clients
from stream.batches import BatchSource, GroupedSender

pytestmark = pytest.mark.integration


def kafka_settings(stack):
    return clients.for_broker(get_settings(), stack.bootstrap)


async def produce(settings, topic: str, n: int, start: int) -> None:
    producer = clients.async_producer(settings)
    await producer.start()
    try:
        futures = [await producer.send(topic, str(start + i).encode(), partition=i % 2) for i in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class Collector:
    def __init__(self) -> None:
        self.values: list[int] = []
        self.offsets: dict[int, list[int]] = {}
        self.seen = asyncio.Event()
        self.want = 0

    async def __call__(self, batch) -> None:
        for rec in batch:
            self.values.append(int(rec.value))
            self.offsets.setdefault(rec.origin.partition, []).append(rec.origin.offset)
        if len(self.values) >= self.want:
            self.seen.set()


async def run_source(settings, topic: str, group: str, want: int, legacy: str | None = None,
                     settle_s: float = 1.5) -> tuple[Collector, BatchSource, list]:
    """A source until ``want`` records were processed (then ``settle_s`` more, so extra ones would
    show), stopped again (which commits)."""
    got = Collector()
    got.want = want
    observed: list = []
    source = BatchSource(settings, topic, got, group=group, legacy_group=legacy, batch_size=7, batch_wait_s=0.05)
    source.observers.append(lambda result, n, took: observed.append((n, took, source.lag())))
    await source.start()
    try:
        await asyncio.wait_for(got.seen.wait(), 60)
        await asyncio.sleep(settle_s)
        assert source.assigned() == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
        assert source.last_batch_done_at is not None and source.last_batch_done_at <= time.monotonic()
    finally:
        await source.stop()
    return got, source, observed


def test_new_group_starts_at_the_legacy_commit_then_at_its_own(stack):
    settings = kafka_settings(stack)
    tag = uuid.uuid4().hex[:8]
    topic, legacy, group = f"tb{tag}.events", f"tb{tag}-app", f"tb{tag}-app-events"
    stack.broker.create_topics({topic: 2})

    async def scenario() -> None:
        await produce(settings, topic, 20, 0)
        # the "old worker": its group consumes the first 20 and commits
        first, _, observed = await run_source(settings, topic, legacy, 20)
        assert sorted(first.values) == list(range(20))
        assert sum(n for n, _, _ in observed) == 20
        await produce(settings, topic, 10, 20)
        # the new group has no commit: it starts where the legacy group committed
        second, src, observed = await run_source(settings, topic, group, 10, legacy=legacy)
        assert sorted(second.values) == list(range(20, 30))
        assert all(took >= 0 for _, took, _ in observed)
        # lag: fetch high-water - committed offset; everything consumed and committed by now
        await produce(settings, topic, 5, 30)
        third, _, _ = await run_source(settings, topic, group, 5, legacy=legacy)
        assert sorted(third.values) == list(range(30, 35))  # its own commit wins over the legacy one
        for offs in [*first.offsets.values(), *second.offsets.values(), *third.offsets.values()]:
            assert offs == sorted(offs) and len(set(offs)) == len(offs)  # per-partition order

    asyncio.run(scenario())


def test_lag_is_high_water_minus_committed(stack):
    settings = kafka_settings(stack)
    tag = uuid.uuid4().hex[:8]
    topic = f"tl{tag}.events"
    stack.broker.create_topics({topic: 2})

    async def scenario() -> None:
        await produce(settings, topic, 40, 0)
        gate = asyncio.Event()
        got: list[int] = []

        async def slow(batch) -> None:
            got.extend(int(r.value) for r in batch)
            await gate.wait()  # the first batch holds: nothing is committed meanwhile

        source = BatchSource(settings, topic, slow, group=f"tl{tag}", batch_size=4, batch_wait_s=0.05)
        await source.start()
        try:
            deadline = time.monotonic() + 60
            while not got and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert got
            lag = source.lag()
            assert lag and set(lag) <= {(topic, 0), (topic, 1)}
            assert sum(lag.values()) == 40  # high-waters 20 + 20, nothing committed yet
        finally:
            gate.set()
            await source.stop()

    asyncio.run(scenario())


def test_grouped_send_keeps_the_partition_send_would_pick(stack):
    settings = kafka_settings(stack)
    tag = uuid.uuid4().hex[:8]
    by_send, grouped = f"tg{tag}.send", f"tg{tag}.grouped"
    stack.broker.create_topics({by_send: 4, grouped: 4})
    keys = [f"TOPIC-{i}".encode() for i in range(40)]

    async def scenario() -> dict[str, dict[bytes, set[int]]]:
        producer = clients.async_producer(settings)
        await producer.start()
        try:
            await asyncio.gather(*[await producer.send(by_send, b"v", key=k) for k in keys])
            await GroupedSender(producer).send([(grouped, k, b"v") for k in keys * 3])
        finally:
            await producer.stop()
        reader = await clients.start_reader(settings, {by_send: 4, grouped: 4})
        where: dict[str, dict[bytes, set[int]]] = {by_send: {}, grouped: {}}
        read, deadline = 0, time.monotonic() + 30
        try:
            while read < len(keys) * 4 and time.monotonic() < deadline:  # 40 sent + 120 grouped
                for tp, msgs in (await reader.getmany(timeout_ms=500)).items():
                    read += len(msgs)
                    for m in msgs:
                        where[tp.topic].setdefault(m.key, set()).add(tp.partition)
        finally:
            await reader.stop()
        return where

    where = asyncio.run(scenario())
    assert set(where[grouped]) == set(keys)
    assert all(len(parts) == 1 for parts in where[grouped].values())
    assert where[grouped] == where[by_send]


def test_nothing_fetched_while_a_partition_start_is_looked_up_is_lost(stack):
    """The legacy lookup takes seconds; records already waiting are not fetched (paused) until
    each partition's start is known, so none is fetched and dropped (seen: 19,000 of 20,000 lost)."""
    settings = kafka_settings(stack)
    tag = uuid.uuid4().hex[:8]
    topic = f"tp{tag}.events"
    stack.broker.create_topics({topic: 2})

    async def scenario() -> None:
        await produce(settings, topic, 300, 0)
        got, _, _ = await run_source(settings, topic, f"tp{tag}-new", 300, legacy=f"tp{tag}-never-committed")
        assert sorted(got.values) == list(range(300))

    asyncio.run(scenario())
