"""Lifecycle state and alerting config in the machine's real Redis (127.0.0.1:6379, no mocks).

Each test uses its own key prefix ``bwtest-<uuid>`` and deletes its keys on teardown.
"""
from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import redis.asyncio as aioredis

from contracts.keys import RedisKeys
from workers.alerting import cloudevents
from workers.alerting.lifecycle import AlertLifecycle, Observation, Timing
from workers.alerting.model import AlertInstance, Route, Silence, fingerprint
from workers.alerting.routing import Router
from workers.alerting.state_store import Commit, RedisAlertStateStore
from workers.alerting.store import AlertConfigStore, AlreadyExists
from workers.alerts import AlertHistory
from workers.outbox import Outbox

REDIS_URL = "redis://127.0.0.1:6379/0"
T0 = 1_000_000.0
LABELS = {"topic": "AAPL", "language": "en", "detector": "volume_spike", "window": "60s", "severity": "warning"}


class CountingRedis(aioredis.Redis):
    """The real client, recording every command it sends directly (scripts are one EVALSHA)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.commands: list[str] = []

    async def execute_command(self, *args, **options):
        self.commands.append(str(args[0]).upper())
        return await super().execute_command(*args, **options)


@pytest.fixture
async def redis():
    client = CountingRedis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as e:  # pragma: no cover - the machine's Redis is part of the test environment
        pytest.fail(f"Redis at {REDIS_URL} is not reachable: {e}")
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis):
    p = f"bwtest-{uuid.uuid4().hex[:12]}"
    yield p
    keys = [k async for k in redis.scan_iter(f"{p}:*", count=1000)]
    if keys:
        await redis.delete(*keys)


def lifecycle(redis, prefix, clock, timing=Timing(for_s=60, keep_firing_for_s=30, repeat_interval_s=600), **kw):
    return AlertLifecycle(RedisAlertStateStore(redis, prefix), timing, clock, **kw)


class Clock:
    t = T0

    def __call__(self) -> float:
        return self.t


def on(labels=LABELS) -> Observation:
    return Observation(labels, True, {"value": 50.0, "baseline": 10.0, "sample_events": ["e1"]})


def off(labels=LABELS) -> Observation:
    return Observation(labels, False)


async def test_two_lifecycles_share_state(redis, prefix):
    clock = Clock()
    a, b = lifecycle(redis, prefix, clock), lifecycle(redis, prefix, clock)
    assert await a.observe([on()], T0) == []
    assert (await b.get(LABELS)).state == "pending"  # b sees a's pending alert
    notes = await b.observe([on()], T0 + 60)  # b completes the `for` period a started
    assert [n.state for n in notes] == ["firing"] and notes[0].active_since == T0
    assert await a.observe([on()], T0 + 61) == []  # a's stale cache: corrected, no double notification
    assert a.conflicts >= 1

    key = f"{prefix}:alert:{fingerprint(LABELS)}"
    h = {k.decode(): v.decode() for k, v in (await redis.hgetall(key)).items()}
    assert h["state"] == "firing" and json.loads(h["labels"]) == LABELS
    assert json.loads(h["annotations"])["sample_events"] == ["e1"]
    assert float(h["fired_at"]) == T0 + 60 and float(h["last_active_at"]) == T0 + 61
    assert int(h["version"]) == 3  # a: pending; b: firing; a: refresh (its conflicting try wrote nothing)
    assert await redis.zscore(f"{prefix}:alerts:live", fingerprint(LABELS)) == T0 + 61
    assert 0 < await redis.ttl(key) <= 7 * 86400

    assert await b.observe([off()], T0 + 70) == []  # keep_firing_for 30 s
    notes = await a.observe([off()], T0 + 91)
    assert [n.state for n in notes] == ["resolved"] and notes[0].resolved_at == T0 + 91
    assert await b.observe([off()], T0 + 92) == []
    assert await redis.zscore(f"{prefix}:alerts:live", fingerprint(LABELS)) is None
    assert 0 < await redis.ttl(key) <= 86400
    assert [x.labels for x in await a.store.active()] == []


async def test_concurrent_workers_notify_exactly_once(redis, prefix):
    clock = Clock()
    workers = [lifecycle(redis, prefix, clock, Timing(for_s=0)) for _ in range(4)]
    labels = [{**LABELS, "topic": f"T{i}"} for i in range(20)]
    results = await asyncio.gather(*(w.observe([on(lb) for lb in labels], T0) for w in workers))
    fired = [n.labels["topic"] for notes in results for n in notes]
    assert sorted(fired) == sorted(lb["topic"] for lb in labels)  # each alert fired once, by one worker


async def test_one_round_trip_per_batch(redis, prefix):
    clock = Clock()
    lc = lifecycle(redis, prefix, clock, Timing(for_s=0, repeat_interval_s=3600))
    batch = [on({**LABELS, "topic": f"T{i}"}) for i in range(50)] + [off({**LABELS, "topic": f"Q{i}"}) for i in
                                                                     range(50)]
    await lc.observe(batch, T0)  # first call may also load the script
    redis.commands.clear()
    await lc.observe(batch, T0 + 1)
    assert redis.commands == ["EVALSHA"]


async def test_sweep_resolves_unobserved_alerts(redis, prefix):
    clock = Clock()
    lc = lifecycle(redis, prefix, clock, Timing(for_s=0, keep_firing_for_s=0), stale_after_s=120)
    other = {**LABELS, "topic": "TSLA"}
    await lc.observe([on(), on(other)], T0)
    await lc.observe([on(other)], T0 + 100)
    notes = await lc.sweep(T0 + 150)
    assert [n.labels["topic"] for n in notes] == ["AAPL"] and notes[0].state == "resolved"
    fresh = lifecycle(redis, prefix, clock, stale_after_s=120)  # another worker, cold cache
    assert [n.labels["topic"] for n in await fresh.sweep(T0 + 300)] == ["TSLA"]


async def test_routes_and_silences_crud(redis, prefix):
    store = AlertConfigStore(redis, prefix)
    v0 = await store.version()
    route = await store.create_route({
        "id": "markets", "matchers": ['topic=~"AAPL|TSLA"', 'severity!="info"'], "group_by": ["topic"],
        "group_wait": "10s", "group_interval": "1m", "repeat_interval": "2h",
        "receivers": [{"type": "webhook", "url": "https://hooks.example.com/x", "secret_ref": "env:BABELWATCH_SECRET_X"},
                      {"type": "alertmanager", "url": "https://am.example.com"},
                      {"type": "kafka", "topic": "alerts.markets"},
                      {"type": "sse", "name": "dash"}],
    })
    assert await store.version() > v0
    assert await store.get_route("markets") == route
    assert [r.id for r in await store.list_routes()] == ["markets"]
    with pytest.raises(AlreadyExists):
        await store.create_route(route)
    with pytest.raises(Exception):
        await store.put_route({"id": "bad", "receivers": []})  # validated before it is stored
    updated = await store.put_route(route.model_copy(update={"group_by": ["topic", "language"]}))
    assert (await store.get_route("markets")).group_by == ["topic", "language"] == updated.group_by
    await redis.hset(store.routes_key, "junk", "{not json")
    assert [r.id for r in await store.list_routes()] == ["markets"]  # invalid entries are skipped
    assert await store.delete_route("markets") and not await store.delete_route("markets")
    assert await store.get_route("markets") is None

    s_active = await store.create_silence(Silence(matchers=['topic="AAPL"'], starts_at=T0, ends_at=T0 + 3600,
                                                  created_by="ops", comment="earnings"))
    s_later = await store.put_silence({"matchers": [{"name": "topic", "value": "TS.*", "isRegex": True}],
                                       "starts_at": T0 + 7200, "ends_at": T0 + 9000, "created_by": "ops"})
    assert await store.get_silence(s_active.id) == s_active
    assert {s.id for s in await store.list_silences(state="active", now=T0 + 10)} == {s_active.id}
    assert {s.id for s in await store.list_silences(state="pending", now=T0 + 10)} == {s_later.id}
    expired = await store.expire_silence(s_active.id, now=T0 + 20)
    assert expired.ends_at == T0 + 20 and (await store.get_silence(s_active.id)).state(T0 + 21) == "expired"
    await store.expire_silence(s_later.id, now=T0 + 20)  # not started yet: removed
    assert await store.get_silence(s_later.id) is None
    assert await store.purge_expired_silences(now=T0 + 10 * 86400) == 1
    assert await store.list_silences() == []


async def test_router_reloads_from_store(redis, prefix):
    store = AlertConfigStore(redis, prefix)
    router = Router(config_store=store)
    await router.refresh()
    assert router.routes == {}
    await store.put_route(Route(id="all", receivers=[{"type": "sse"}]))
    await store.put_silence(Silence(matchers=['topic="AAPL"'], starts_at=T0, ends_at=T0 + 60, created_by="ops"))
    assert await router.refresh()
    assert list(router.routes) == ["all"] and len(router.silences) == 1
    assert not await router.refresh()  # version unchanged: nothing reloaded


async def test_notification_survives_a_crash_between_commit_and_send(redis, prefix):
    """The transition and its CloudEvent are committed in one script; the send happens later from
    the outbox, so a worker dying in between loses nothing and a re-drain sends nothing twice."""
    clock = Clock()
    lc = lifecycle(redis, prefix, clock, Timing(for_s=0, keep_firing_for_s=0, repeat_interval_s=600),
                   stale_after_s=120)
    other = {**LABELS, "topic": "TSLA"}
    fired = await lc.observe([on(), on(other)], T0)
    assert [n.state for n in fired] == ["firing", "firing"]
    # the worker "dies" here: committed, never drained. A restarted one drains, and the send fails
    # once (broker down) before it succeeds.
    outbox = Outbox(redis, RedisKeys(prefix).alerts_outbox)
    assert await outbox.pending() == 2

    async def broker_down(items):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        await Outbox(redis, RedisKeys(prefix).alerts_outbox).drain(broker_down)
    assert await outbox.pending() == 2
    sent: list[bytes] = []

    async def send(items):
        sent.extend(items)

    assert await Outbox(redis, RedisKeys(prefix).alerts_outbox).drain(send) == 2
    assert await Outbox(redis, RedisKeys(prefix).alerts_outbox).drain(send) == 0  # trimmed: nothing twice
    events = [json.loads(x) for x in sent]
    assert [(e["type"], e["subject"]) for e in events] == [
        ("io.babelwatch.alert.firing", fingerprint(LABELS)), ("io.babelwatch.alert.firing", fingerprint(other))]
    assert {e["id"] for e in events} == {cloudevents.alert_event(n, version=1)["id"] for n in fired}

    # a resolution (here by the staleness sweep: the topic went quiet) takes the same path
    await lc.observe([on(other)], T0 + 100)  # no notification: repeat_interval not reached
    assert await outbox.pending() == 0
    resolved = await lc.sweep(T0 + 150)
    assert [(n.state, n.labels["topic"]) for n in resolved] == [("resolved", "AAPL")]
    sent.clear()
    assert await outbox.drain(send) == 1
    [event] = [json.loads(x) for x in sent]
    assert event["type"] == "io.babelwatch.alert.resolved" and event["data"]["resolved_at"] == T0 + 150
    assert event["id"] not in {e["id"] for e in events}

    # a losing compare-and-set queues nothing: only the winner's transition is notified
    stale = lifecycle(redis, prefix, clock, Timing(for_s=0, keep_firing_for_s=0))
    assert await stale.observe([on()], T0 + 200) != []  # AAPL fires again: a new episode, a new id
    assert await lc.observe([on()], T0 + 200) == []  # lc's cache is stale: conflict, nothing queued
    sent.clear()
    assert await outbox.drain(send) == 1 and json.loads(sent[0])["id"] not in {e["id"] for e in events}


async def test_history_is_written_with_the_transition(redis, prefix):
    """The history entry the API serves is LPUSHed by the commit script itself, next to the outbox
    entry, so a worker dying right after its commit cannot leave a notification without history."""
    store = RedisAlertStateStore(redis, prefix, history_len=2)
    history, outbox = AlertHistory(redis, prefix), Outbox(redis, RedisKeys(prefix).alerts_outbox)

    def firing(topic: str) -> AlertInstance:
        return AlertInstance(labels={**LABELS, "topic": topic}, state="firing", active_since=T0,
                             last_active_at=T0, fired_at=T0, last_notified_at=T0)

    a, b, c = firing("A"), firing("B"), firing("C")
    await store.commit([Commit(a.fingerprint, 0, a, a)])  # first call may also load the script
    redis.commands.clear()
    quiet = a.model_copy(update={"last_active_at": T0 + 1})
    assert await store.commit([Commit(b.fingerprint, 0, b, b), Commit(c.fingerprint, 0, c, c),
                               Commit(a.fingerprint, 1, quiet)]) == {}
    assert redis.commands == ["EVALSHA"]  # state, outbox and history in one step
    assert [x.labels["topic"] for x in await history.history()] == ["C", "B"]  # newest first, capped at 2
    assert (await history.history())[0] == c  # what AlertHistory parses is the committed note
    assert await outbox.pending() == 3  # A, B, C: only quiet's refresh had no note
    assert await redis.llen(f"{prefix}:alerts:history") == 2

    # a losing compare-and-set writes neither: the conflict is returned instead
    d = firing("D")
    conflicts = await store.commit([Commit(b.fingerprint, 0, d, d)])
    assert list(conflicts) == [b.fingerprint] and conflicts[b.fingerprint].version == 1
    assert [x.labels["topic"] for x in await history.history()] == ["C", "B"]
    assert await outbox.pending() == 3

    # history_len=0: the transition and its outbox entry, no history
    off_store = RedisAlertStateStore(redis, prefix, history_len=0)
    e = firing("E")
    assert await off_store.commit([Commit(e.fingerprint, 0, e, e)]) == {}
    assert (await off_store.read([e.fingerprint]))[e.fingerprint].version == 1
    assert await outbox.pending() == 4
    assert [x.labels["topic"] for x in await history.history()] == ["C", "B"]

    # the lifecycle's notifications take the same path
    lc = AlertLifecycle(store, Timing(for_s=0, keep_firing_for_s=0), Clock())
    [note] = await lc.observe([on({**LABELS, "topic": "F"})], T0)
    assert (await history.history())[0] == note and await outbox.pending() == 5
