"""The notifier's work without a broker (workers.notifier.AlertDelivery), driven by plain calls:
records in, deliveries out (Kafka receivers through a recording ``produce``, so no HTTP either),
committable offsets back. Real Redis (routes, ledger). The Kafka side is tested in
tests/stream/test_notifier*.py."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from contracts.settings import Settings
from workers.alerting import cloudevents
from workers.alerting.model import AlertInstance
from workers.alerting.store import AlertConfigStore
from workers.notifier import RAW_CHANNEL, AlertDelivery

REDIS = "redis://127.0.0.1:6379/0"  # the machine's (tests/conftest.py)
TP = ("alerts", 0)


@dataclass
class Rec:
    offset: int
    value: bytes | None
    topic: str = "alerts"
    partition: int = 0


class Produced:
    """A ``produce`` that records; a topic can be held (``gate``) or made to fail."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failing: set[str] = set()

    def gate(self, topic: str) -> asyncio.Event:
        return self.gates.setdefault(topic, asyncio.Event())

    async def __call__(self, topic: str, key: bytes | None, value: bytes) -> None:
        if topic in self.gates:
            await self.gates[topic].wait()
        if topic in self.failing:
            raise ConnectionError("broker down")
        self.sent.append((topic, key, value))

    def on(self, topic: str) -> list[dict]:
        return [json.loads(v) for t, _, v in self.sent if t == topic]


def alert(topic: str, state: str = "firing", t: float = 1000.0) -> AlertInstance:
    return AlertInstance(
        labels={"topic": topic, "language": "*", "detector": "volume_spike", "window": "60s",
                "severity": "critical", "stage": "open"},
        annotations={"summary": f"{topic} burst"}, state=state, active_since=t, last_active_at=t, fired_at=t,
        last_notified_at=t, resolved_at=t + 1 if state == "resolved" else None,
    )


def event(topic: str, state: str = "firing") -> bytes:
    return cloudevents.dumps(cloudevents.alert_event(alert(topic, state)))


def kafka_route(route_id: str, matcher: str, *topics: str) -> dict:
    return {"id": route_id, "matchers": [matcher], "group_by": ["topic"], "group_wait": "0s",
            "group_interval": "1s", "repeat_interval": "1h",
            "receivers": [{"type": "kafka", "name": t, "topic": t} for t in topics]}


async def until(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.fixture
async def world():
    """``await world.start(*routes)`` -> a started AlertDelivery on a fresh Redis prefix (the
    same prefix for every one started in the test, like a restarted notifier)."""
    prefix = f"bwtest-d{uuid.uuid4().hex[:8]}"
    settings = Settings(redis_url=REDIS, redis_prefix=prefix, topic_alerts_failed="failed")
    r = aioredis.from_url(REDIS)
    started: list[AlertDelivery] = []

    class World:
        produced = Produced()

        async def start(self, *routes: dict) -> AlertDelivery:
            store = AlertConfigStore(r, prefix)
            for route in routes:
                await store.create_route(route)
            d = AlertDelivery(settings, produce=self.produced, refresh_s=0.05, tick_s=0.02)
            started.append(d)
            await d.start()
            return d

    yield World()
    for d in started:
        await d.stop()
    keys = [k async for k in r.scan_iter(f"{prefix}:*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


async def test_records_that_are_not_alert_events_end_at_once(world):
    d = await world.start()
    not_an_alert = cloudevents.dumps(cloudevents.envelope("io.babelwatch.alertgroup.firing", {"x": 1}))
    d.ingest([Rec(0, b"not json"), Rec(1, None), Rec(2, not_an_alert)])
    assert d.skipped == 3 and d.consumed == 0
    assert d.committable() == {TP: 3}
    d.committed({TP: 3})
    assert d.committable() == {}  # nothing moved since


async def test_a_record_is_committable_only_once_every_receiver_ended(world):
    slow = world.produced.gate("slow")
    d = await world.start(kafka_route("desk", 'topic="TSLA"', "fast", "slow"))
    d.ingest([Rec(0, event("TSLA"))])
    assert await until(lambda: len(world.produced.on("fast")) == 1)
    [group] = world.produced.on("fast")
    assert group["type"] == "io.babelwatch.alertgroup.firing" and group["data"]["routeId"] == "desk"
    await asyncio.sleep(0.2)
    assert d.committable() == {}  # "slow" still owes it
    slow.set()
    assert await until(lambda: d.committable() == {TP: 1})
    assert d.consumed == 1 and len(world.produced.on("slow")) == 1


async def test_a_repeated_event_id_is_routed_once_and_its_copy_waits_for_the_first(world):
    """The workers' outbox sends at least once: the same CloudEvent id twice reaches a receiver
    once, and the copy (done at once) cannot carry the commit past the first one."""
    desk = world.produced.gate("desk")
    d = await world.start(kafka_route("desk", 'topic="TSLA"', "desk"))
    same = event("TSLA")
    d.ingest([Rec(0, same), Rec(1, same)])
    assert d.consumed == 1 and d.duplicates == 1
    await asyncio.sleep(0.2)
    assert d.committable() == {}
    desk.set()
    assert await until(lambda: d.committable() == {TP: 2})
    await asyncio.sleep(0.2)
    assert len(world.produced.on("desk")) == 1


async def test_a_revoked_partition_read_again_waits_for_the_copy_in_flight(world):
    """A rebalance took the partition away and gives it back from the last commit: the record read
    again is a repeat (dropped), yet not done before its first copy is."""
    desk = world.produced.gate("desk")
    d = await world.start(kafka_route("desk", 'topic="TSLA"', "desk"))
    same = event("TSLA")
    d.ingest([Rec(0, same)])
    await asyncio.sleep(0.2)
    d.revoked([TP])
    d.ingest([Rec(0, same)])
    assert d.duplicates == 1
    await asyncio.sleep(0.2)
    assert d.committable() == {}
    desk.set()
    assert await until(lambda: d.committable() == {TP: 1})
    assert len(world.produced.on("desk")) == 1


async def test_a_failed_delivery_goes_to_the_failed_topic_and_ends_its_record(world):
    world.produced.failing.add("broken")
    d = await world.start(kafka_route("desk", 'topic="TSLA"', "ok", "broken"))
    d.ingest([Rec(0, event("TSLA"))])
    assert await until(lambda: d.committable() == {TP: 1})
    [failed] = world.produced.on("failed")
    assert failed["receiver"] == "broken" and failed["receiver_type"] == "kafka" and failed["url"] == "broken"
    assert failed["error"] == "ConnectionError: broker down" and failed["extra"] == {"lane": "desk/broken"}
    assert json.loads(failed["body"])["type"] == "io.babelwatch.alertgroup.firing"
    assert d.dead_lettered == 1 and len(world.produced.on("ok")) == 1


async def test_a_full_lane_drops_its_oldest_to_the_failed_topic(world):
    slow = world.produced.gate("slow")
    d = await world.start(kafka_route("slow", 'topic=~"T.*"', "slow"))
    d.dispatcher.queue_size = 1
    d.ingest([Rec(0, event("T0"))])
    assert await until(lambda: d.dispatcher.stats().get("slow/slow", {}).get("queued") == 0)  # T0 in flight
    d.ingest([Rec(1, event("T1"))])
    assert await until(lambda: d.dispatcher.stats()["slow/slow"]["queued"] == 1)
    d.ingest([Rec(2, event("T2"))])  # drops T1
    assert await until(lambda: len(world.produced.on("failed")) == 1)
    [failed] = world.produced.on("failed")
    assert failed["error"] == "receiver queue full: dropped"
    assert [a["labels"]["topic"] for a in json.loads(failed["body"])["data"]["alerts"]] == ["T1"]
    await asyncio.sleep(0.2)
    assert d.committable() == {}  # T0 is still being delivered
    slow.set()
    assert await until(lambda: d.committable() == {TP: 3})
    assert [g["data"]["alerts"][0]["labels"]["topic"] for g in world.produced.on("slow")] == ["T0", "T2"]


async def test_a_restarted_delivery_skips_what_a_receiver_already_got(world):
    """What a receiver got lives in Redis: records routed again after a restart skip its lane."""
    d = await world.start(kafka_route("desk", 'topic="TSLA"', "desk"))
    firing = event("TSLA")
    d.ingest([Rec(0, firing)])
    assert await until(lambda: d.committable() == {TP: 1})
    await d.stop()

    again = await world.start()
    again.ingest([Rec(0, firing)])  # uncommitted, say: a new process has no memory of the id
    assert await until(lambda: again.dispatcher.stats().get("desk/desk", {}).get("skipped") == 1)
    assert await until(lambda: again.committable() == {TP: 1})
    assert len(world.produced.on("desk")) == 1


async def test_every_alert_event_is_published_live_once(world):
    d = await world.start()
    sub = d.broadcaster.subscribe(RAW_CHANNEL)
    firing = event("TSLA")
    d.ingest([Rec(0, firing), Rec(1, firing)])
    msg = await sub.get(timeout=1)
    assert msg is not None and msg.event == "io.babelwatch.alert.firing" and msg.data == firing.decode()
    assert msg.id == json.loads(firing)["id"]
    assert await sub.get(timeout=0.2) is None
