"""The notifier's give-up paths on the real broker, Redis and local HTTP receivers: a notification
that a lane gives up on (queue full, a sink bug, a sink that cannot start, a refused webhook
address) lands on the failed-deliveries topic with its reason, receiver and alert, and its record
still gets committed in the consumer group; other lanes deliver as usual. And the commit on a
partition revoke (a second notifier joining the group): it commits what is done, and never
passes a record whose delivery is still owed, whoever owns the partition afterwards."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from bw_http import LocalReceiver
from bw_alerting import wait_until
from test_notifier import alert, clear_keys, crash, lane_stat, read_topic, route

from contracts.settings import Settings
from workers.alerting import cloudevents
from workers.alerting.sinks.base import Sink
from workers.alerting.store import AlertConfigStore
from stream.notifier import Notifier

pytestmark = pytest.mark.integration


def settings_for(stack, tag: str, **kw) -> Settings:
    topic = f"g{tag}.alerts"
    stack.broker.create_topics({topic: 1, f"{topic}.failed": 1})
    return Settings(broker_url=f"kafka://{stack.bootstrap}", redis_url=stack.redis_url, redis_prefix=f"bwtest-g{tag}",
                    app_id=f"bwtest-g{tag}", topic_alerts=topic, topic_alerts_failed=f"{topic}.failed", **kw)


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    """The consumer group's committed offset of partition 0 (read without joining the group)."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await c.start()
    try:
        return await c.committed(TopicPartition(topic, 0))
    finally:
        await c.stop()


async def wait_committed(bootstrap: str, group: str, topic: str, want: int, timeout: float = 10.0) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        got = await committed(bootstrap, group, topic)
        if got == want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


def failed_records(records) -> list[dict]:
    out = [json.loads(r.value) for r in records]
    for rec in out:
        rec["body"] = json.loads(rec["body"])
    return out


def alert_event(topic: str, state: str = "firing") -> bytes:
    return cloudevents.dumps(cloudevents.alert_event(alert(topic, state)))


async def test_given_up_notifications_go_to_the_failed_topic_and_get_committed(stack):
    """One subscription, four receivers: ``ok`` (webhook), ``buggy`` (its sink raises KeyError on
    its first notification), ``broken`` (its sink cannot be built), ``refused`` (a webhook to an
    address the SSRF guard refuses). Two alerts: ``ok`` gets both, ``buggy`` the second; the rest
    are on the failed topic, and both records are committed."""
    tag = uuid.uuid4().hex[:8]
    s = settings_for(stack, tag, alerting_allowed_networks="127.0.0.0/8")  # loopback yes, 10/8 no
    ok = await LocalReceiver([200]).start()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    r = aioredis.from_url(stack.redis_url)
    notifier = Notifier(s, refresh_s=0.2, tick_s=0.05, commit_s=0.2)

    class Buggy(Sink):
        name = "buggy"
        got: list[str] = []

        async def send(self, group):
            if not self.got:
                self.got.append("")
                raise KeyError("routeId")
            self.got.append(group.alerts[0].labels["topic"])

    try:
        await AlertConfigStore(r, s.redis_prefix).create_route({**route("desk", "TSLA", [
            {"type": "webhook", "name": "ok", "url": ok.url()},
            {"type": "sse", "name": "buggy"},
            {"type": "sse", "name": "broken"},
            {"type": "webhook", "name": "refused", "url": "http://10.1.2.3:9/hook", "retries": 5}]),
            "matchers": ['topic=~"TSLA|AAPL"']})
        await notifier.start()
        real_factory = notifier.dispatcher.sink_factory

        def factory(receiver):
            if receiver.name == "broken":
                raise ValueError("receiver misconfigured")
            return Buggy() if receiver.name == "buggy" else real_factory(receiver)

        notifier.dispatcher.sink_factory = factory  # lanes are made at the first notification
        await notifier.wait_assigned(30)
        await producer.start()
        await producer.send_and_wait(s.topic_alerts, alert_event("TSLA"), key=b"a")
        await ok.wait_requests(1, timeout=10)
        await producer.send_and_wait(s.topic_alerts, alert_event("AAPL"), key=b"b")
        await ok.wait_requests(2, timeout=10)

        dead = failed_records(await read_topic(stack.bootstrap, s.topic_alerts_failed, 5))
        assert len(dead) == 5, dead
        topic_of = {rec["body"]["data"]["alerts"][0]["labels"]["topic"] for rec in dead}
        assert topic_of == {"TSLA", "AAPL"}
        by = {(rec["receiver"], rec["body"]["data"]["alerts"][0]["labels"]["topic"]): rec for rec in dead}
        assert set(by) == {("buggy", "TSLA"), ("broken", "TSLA"), ("broken", "AAPL"),
                           ("refused", "TSLA"), ("refused", "AAPL")}
        bug = by[("buggy", "TSLA")]
        assert bug["error"] == "KeyError: 'routeId'" and bug["receiver_type"] == "sse"
        assert bug["extra"] == {"lane": "desk/buggy"} and bug["group_key"].startswith("desk:")
        assert bug["body"]["type"] == "io.babelwatch.alertgroup.firing"
        assert bug["body"]["data"]["alerts"][0]["labels"]["detector"] == "volume_spike"
        assert bug["event_id"] == bug["body"]["id"]
        for t in ("TSLA", "AAPL"):
            broken = by[("broken", t)]
            assert broken["error"] == "RuntimeError: sink could not start: ValueError: receiver misconfigured"
            assert broken["extra"] == {"lane": "desk/broken"}
            refused = by[("refused", t)]  # refused before any connection, not retried
            assert refused["receiver_type"] == "webhook" and refused["url"] == "http://10.1.2.3:9/hook"
            assert refused["error"].startswith("destination refused") and refused["attempts"] == 1

        assert Buggy.got == ["", "AAPL"]  # the lane outlived its sink's bug
        assert [json.loads(q.body)["data"]["alerts"][0]["labels"]["topic"] for q in ok.requests] == ["TSLA", "AAPL"]
        assert lane_stat(notifier, "desk/ok", "sent") == 2
        assert await wait_committed(stack.bootstrap, notifier.group_id, s.topic_alerts, 2) == 2
    finally:
        await producer.stop()
        await notifier.stop()
        await clear_keys(r, s.redis_prefix)
        await ok.stop()


async def test_full_lane_drops_to_the_failed_topic_and_commits_only_past_what_ended(stack):
    """A receiver hangs on its first notification; its lane holds one more; a third drops the
    queued one to the failed topic. The commit waits on the hanging delivery, then passes all."""
    tag = uuid.uuid4().hex[:8]
    s = settings_for(stack, tag, alerting_allow_private=True)
    slow, other = await LocalReceiver(["hang", 200]).start(), await LocalReceiver([200]).start()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    r = aioredis.from_url(stack.redis_url)
    notifier = Notifier(s, refresh_s=0.2, tick_s=0.05, commit_s=0.2)
    try:
        store = AlertConfigStore(r, s.redis_prefix)
        for rid, url in (("slow", slow.url()), ("other", other.url())):
            await store.create_route({**route(rid, "", [{"type": "webhook", "name": rid, "url": url,
                                                          "timeout_s": 10}]), "matchers": ['topic=~"T.*"']})
        await notifier.start()
        notifier.dispatcher.queue_size = 1
        await notifier.wait_assigned(30)
        await producer.start()

        await producer.send_and_wait(s.topic_alerts, alert_event("T0"), key=b"0")
        await slow.wait_requests(1, timeout=10)  # T0 in flight, hanging
        await producer.send_and_wait(s.topic_alerts, alert_event("T1"), key=b"1")
        assert await wait_until(lambda: notifier.dispatcher.stats().get("slow/slow", {}).get("queued") == 1, 10)
        await producer.send_and_wait(s.topic_alerts, alert_event("T2"), key=b"2")  # drops T1
        await other.wait_requests(3, timeout=10)
        assert lane_stat(notifier, "slow/slow", "dropped") == 1

        [dead] = failed_records(await read_topic(stack.bootstrap, s.topic_alerts_failed, 1, timeout=5))
        assert dead["receiver"] == "slow" and dead["receiver_type"] == "webhook" and dead["url"] == slow.url()
        assert dead["error"] == "receiver queue full: dropped" and dead["extra"] == {"lane": "slow/slow"}
        assert [a["labels"]["topic"] for a in dead["body"]["data"]["alerts"]] == ["T1"]
        # T1 ended (given up), T2 waits, T0 still hangs: nothing past record 0 may be committed
        await asyncio.sleep(0.6)
        assert await committed(stack.bootstrap, notifier.group_id, s.topic_alerts) is None

        slow.release.set()
        await slow.wait_requests(2, timeout=10)
        topics = [json.loads(q.body)["data"]["alerts"][0]["labels"]["topic"] for q in slow.requests]
        assert topics == ["T0", "T2"]
        assert [json.loads(q.body)["data"]["alerts"][0]["labels"]["topic"] for q in other.requests] == [
            "T0", "T1", "T2"]  # the other lane missed nothing
        assert await wait_committed(stack.bootstrap, notifier.group_id, s.topic_alerts, 3) == 3
    finally:
        await producer.stop()
        await notifier.stop()
        await clear_keys(r, s.redis_prefix)
        for h in (slow, other):
            await h.stop()


async def test_revoke_commits_what_is_done_and_never_passes_an_owed_record(stack):
    """Notifier A delivers record 0 and keeps retrying record 1 (its receiver fails). Its periodic
    commit is far off, so when notifier B joins the group, only A's revoke handler commits: past
    record 0, not past 1. B then dies, A owns the partition again (whichever of the two held it in
    between) and reads record 1 again; A stops before record 1 was ever delivered: still not
    committed past it, so the next notifier gets it."""
    tag = uuid.uuid4().hex[:8]
    s = settings_for(stack, tag, alerting_allow_private=True)
    ok, bad = await LocalReceiver([200]).start(), await LocalReceiver([500]).start()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    r = aioredis.from_url(stack.redis_url)
    a = Notifier(s, refresh_s=0.2, tick_s=0.05, commit_s=600)
    b = Notifier(s, refresh_s=0.2, tick_s=0.05, commit_s=600)
    try:
        store = AlertConfigStore(r, s.redis_prefix)
        await store.create_route(route("ok", "TSLA", [{"type": "webhook", "name": "ok", "url": ok.url()}]))
        await store.create_route(route("bad", "AAPL", [{"type": "webhook", "name": "bad", "url": bad.url(),
                                                        "retries": 10, "backoff_s": 2, "max_backoff_s": 5}]))  # >= 23 s of retries
        await a.start()
        await a.wait_assigned(30)
        await producer.start()
        await producer.send_and_wait(s.topic_alerts, alert_event("TSLA"), key=b"0")
        await producer.send_and_wait(s.topic_alerts, alert_event("AAPL"), key=b"1")
        await ok.wait_requests(1, timeout=10)
        await bad.wait_requests(1, timeout=10)
        assert await committed(stack.bootstrap, a.group_id, s.topic_alerts) is None

        await b.start()  # joins the group: A's partition is revoked, A commits what is done
        assert await wait_committed(stack.bootstrap, a.group_id, s.topic_alerts, 1) == 1
        assert await wait_until(lambda: a.assigned.is_set() or b.assigned.is_set(), 20)  # one of them owns it
        await asyncio.sleep(1.0)  # the owner routes its records; a commit past 1 would be a loss
        b_owned = b.assigned.is_set()
        await crash(b)  # leaves the group without committing: A owns the partition
        # and has read record 1 again from the committed offset (in between, or now)
        assert await wait_until(lambda: a.assigned.is_set() and a.consumed + a.duplicates >= 3, 20), (
            b_owned, a.consumed, a.duplicates)
        assert len(ok.requests) == 1
        assert lane_stat(a, "bad/bad", "failed") == 0  # still being retried: not given up
        await a.dispatcher.abandon()  # (a stop without the 5 s drain)
        await a.stop()  # commits what is done: record 1 is still owed
        assert await committed(stack.bootstrap, a.group_id, s.topic_alerts) == 1, b_owned
    finally:
        await producer.stop()
        await b.stop()
        await a.stop()
        await clear_keys(r, s.redis_prefix)
        for h in (ok, bad):
            await h.stop()
