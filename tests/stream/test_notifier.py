"""The notifier service in this test's event loop, on the real broker and Redis: alert CloudEvents
produced to the alerts topic reach exactly the subscriptions whose matchers select them; a hanging
receiver and a failing one delay nobody else; what fails for good lands on the failed-deliveries
topic; a Kafka receiver gets the group event; records that are not alert events are skipped."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bw_http import LocalReceiver
from bw_alerting import wait_until

from contracts.settings import Settings
from workers.alerting import cloudevents
from workers.alerting.model import AlertInstance
from workers.alerting.store import AlertConfigStore
from workers.alerting.tasks import cancel
from stream.notifier import Notifier

pytestmark = pytest.mark.integration


def alert(topic: str, state: str = "firing", t: float | None = None) -> AlertInstance:
    t = time.time() if t is None else t
    return AlertInstance(
        labels={"topic": topic, "language": "*", "detector": "volume_spike", "window": "60s",
                "severity": "critical", "stage": "open"},
        annotations={"summary": f"{topic} burst"}, state=state, active_since=t, last_active_at=t, fired_at=t,
        last_notified_at=t, resolved_at=t + 1 if state == "resolved" else None,
    )


def route(route_id: str, topic: str, receivers: list[dict]) -> dict:
    return {"id": route_id, "matchers": [f'topic="{topic}"'], "group_by": ["topic"], "group_wait": "0.2s",
            "group_interval": "1s", "repeat_interval": "1h", "receivers": receivers}


def notifier_settings(stack, tag: str, topic: str) -> Settings:
    return Settings(broker_url=f"kafka://{stack.bootstrap}", redis_url=stack.redis_url, redis_prefix=f"bwtest-n{tag}",
                    app_id=f"bwtest-n{tag}", topic_alerts=topic, topic_alerts_failed=f"{topic}.failed",
                    alerting_allow_private=True)


async def clear_keys(r: aioredis.Redis, prefix: str) -> None:
    keys = [k async for k in r.scan_iter(f"{prefix}:*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


def lane_stat(notifier: Notifier, lane: str, stat: str) -> int:
    return notifier.dispatcher.stats().get(lane, {}).get(stat, 0) if notifier.dispatcher else 0


def types_answered_ok(hook: LocalReceiver, since: int) -> list[str]:
    """The CloudEvent types of the requests from ``since`` on (while the hook answers 200)."""
    return [json.loads(q.body)["type"].rsplit(".", 1)[1] for q in hook.requests[since:]]


async def crash(notifier: Notifier) -> None:
    """The notifier dies in the middle: deliveries cancelled, no drain, nothing more committed."""
    await cancel(notifier._task)
    await cancel(notifier._commit_task)
    notifier._task = notifier._commit_task = None
    await notifier.router.stop()
    await notifier.dispatcher.abandon()
    notifier.router = notifier.dispatcher = None
    await notifier.consumer.stop()  # no auto-commit: leaves the group without committing
    notifier.consumer = None
    await notifier.stop()  # what is left: producer, Redis


async def read_topic(bootstrap: str, topic: str, want: int, timeout: float = 15.0) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


async def test_notifier_routes_isolates_receivers_and_dead_letters(stack):
    tag = uuid.uuid4().hex[:8]
    topics = {"alerts": f"n{tag}.alerts", "failed": f"n{tag}.alerts.failed", "kafka_out": f"n{tag}.desk"}
    stack.broker.create_topics({topics["alerts"]: 1, topics["failed"]: 1, topics["kafka_out"]: 1})
    settings = Settings(broker_url=f"kafka://{stack.bootstrap}", redis_url=stack.redis_url,
                        redis_prefix=f"bwtest-n{tag}", app_id=f"bwtest-n{tag}", topic_alerts=topics["alerts"],
                        topic_alerts_failed=topics["failed"], alerting_allow_private=True)
    fast, slow, failing, other = (await LocalReceiver([200]).start(), await LocalReceiver(["hang"]).start(),
                                  await LocalReceiver([500]).start(), await LocalReceiver([200]).start())
    notifier = Notifier(settings, refresh_s=0.2, tick_s=0.05)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    r = aioredis.from_url(stack.redis_url)
    try:
        store = AlertConfigStore(r, settings.redis_prefix)  # what the subscriptions API writes
        await store.create_route(route("slow", "TSLA", [{"type": "webhook", "url": slow.url(), "timeout_s": 10,
                                                         "retries": 0}]))
        await store.create_route(route("failing", "TSLA", [{"type": "webhook", "url": failing.url(), "retries": 1,
                                                            "backoff_s": 0.05}]))
        await store.create_route(route("fast", "TSLA", [{"type": "webhook", "url": fast.url()},
                                                        {"type": "kafka", "topic": topics["kafka_out"]}]))
        await store.create_route(route("other", "AAPL", [{"type": "webhook", "url": other.url()}]))
        await notifier.start()
        await notifier.wait_assigned(30)
        await producer.start()

        t0 = time.monotonic()
        await producer.send_and_wait(topics["alerts"], b"not a cloudevent")
        await producer.send_and_wait(topics["alerts"], cloudevents.dumps(cloudevents.alert_event(alert("TSLA"))),
                                     key=b"k")
        await fast.wait_requests(1, timeout=10)
        assert len(fast.requests) == 1 and fast.requests[0].at - t0 < 5
        await slow.wait_requests(1, timeout=5)
        assert len(slow.requests) == 1  # still hanging: it delayed nobody
        await failing.wait_requests(2, timeout=5)
        assert len(failing.requests) == 2  # first attempt + one retry

        dead = await read_topic(stack.bootstrap, topics["failed"], 1)
        assert len(dead) == 1
        record = json.loads(dead[0].value)
        assert record["receiver"] == "webhook-0" and record["receiver_type"] == "webhook"
        assert record["status"] == 500 and record["attempts"] == 2 and "HTTP 500" in record["error"]
        assert json.loads(record["body"])["type"] == "io.babelwatch.alertgroup.firing"

        out = await read_topic(stack.bootstrap, topics["kafka_out"], 1)
        assert len(out) == 1 and out[0].key.startswith(b"fast:")  # keyed by group key
        assert json.loads(out[0].value)["data"]["routeId"] == "fast"

        body = json.loads(fast.requests[0].body)
        assert [a["labels"]["topic"] for a in body["data"]["alerts"]] == ["TSLA"]
        await asyncio.sleep(1.5)
        assert other.requests == [] and len(fast.requests) == 1
        assert notifier.skipped == 1 and notifier.consumed == 1

        # resolved: sent once to the subscription that heard the firing one
        await producer.send_and_wait(topics["alerts"],
                                     cloudevents.dumps(cloudevents.alert_event(alert("TSLA", "resolved"))))
        await fast.wait_requests(2, timeout=10)
        assert json.loads(fast.requests[1].body)["type"] == "io.babelwatch.alertgroup.resolved"
    finally:
        await producer.stop()
        await clear_keys(r, settings.redis_prefix)
        t1 = time.monotonic()
        await notifier.stop()
        assert time.monotonic() - t1 < 10  # the hanging receiver does not hold the shutdown hostage
        for r in (fast, slow, failing, other):
            await r.stop()


async def test_repeated_event_ids_are_delivered_once(stack):
    """The workers' outbox sends at least once: a re-sent notification carries the same CloudEvent
    id and must not reach a subscriber twice, also after the notifier restarts."""
    tag = uuid.uuid4().hex[:8]
    topic = f"n{tag}.alerts"
    stack.broker.create_topics({topic: 1, f"{topic}.failed": 1})
    settings = notifier_settings(stack, tag, topic)
    hook = await LocalReceiver([200]).start()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    r = aioredis.from_url(stack.redis_url)
    firing = cloudevents.dumps(cloudevents.alert_event(alert("TSLA", t=1000.0), version=1))
    resolved = cloudevents.dumps(cloudevents.alert_event(alert("TSLA", "resolved", t=1000.0), version=2))
    notifier = Notifier(settings, refresh_s=0.2, tick_s=0.05)
    try:
        await AlertConfigStore(r, settings.redis_prefix).create_route(route("desk", "TSLA", [
            {"type": "webhook", "url": hook.url()}]))
        await notifier.start()
        await notifier.wait_assigned(30)
        await producer.start()
        # firing twice (a drain that died before trimming); once it was delivered, the resolution,
        # then a drain that had sent [firing, resolved] and died sends both again: without the
        # dedup the repeated firing would open a new group and be notified again
        for value in (firing, firing):
            await producer.send_and_wait(topic, value, key=b"fp")
        await hook.wait_requests(1, timeout=10)
        for value in (resolved, firing, resolved):
            await producer.send_and_wait(topic, value, key=b"fp")
        await hook.wait_requests(2, timeout=10)
        await asyncio.sleep(1.5)  # anything repeated would have arrived by now
        assert [json.loads(q.body)["type"] for q in hook.requests] == [
            "io.babelwatch.alertgroup.firing", "io.babelwatch.alertgroup.resolved"]
        assert notifier.consumed == 2 and notifier.duplicates == 3
        await notifier.stop()

        # what the receiver got lives in Redis: a restarted notifier routes a late repeat, and the
        # receiver's lane skips it
        notifier = Notifier(settings, refresh_s=0.2, tick_s=0.05)
        await notifier.start()
        await notifier.wait_assigned(30)
        await producer.send_and_wait(topic, firing, key=b"fp")
        assert await wait_until(lambda: lane_stat(notifier, "desk/webhook-0", "skipped") == 1, 10)
        await asyncio.sleep(1.0)
        assert notifier.consumed == 1 and len(hook.requests) == 2
    finally:
        await producer.stop()
        await notifier.stop()
        await clear_keys(r, settings.redis_prefix)
        await hook.stop()


async def test_redelivered_records_reach_only_the_receivers_that_missed_them(stack):
    """One subscription, two webhooks: ``good`` gets the firing alert, ``bad`` keeps failing; the
    notifier crashes, so the record stays uncommitted. The next notifier routes it again: ``bad``
    gets it, ``good`` (which has it, says Redis) does not get it twice. The resolution then
    reaches both, once."""
    tag = uuid.uuid4().hex[:8]
    topic = f"n{tag}.alerts"
    stack.broker.create_topics({topic: 1, f"{topic}.failed": 1})
    settings = notifier_settings(stack, tag, topic)
    good, bad = await LocalReceiver([200]).start(), await LocalReceiver([500]).start()
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    r = aioredis.from_url(stack.redis_url)
    notifier = Notifier(settings, refresh_s=0.2, tick_s=0.05, commit_s=0.2)
    try:
        await AlertConfigStore(r, settings.redis_prefix).create_route(route("desk", "TSLA", [
            {"type": "webhook", "name": "good", "url": good.url()},
            {"type": "webhook", "name": "bad", "url": bad.url(), "retries": 10, "backoff_s": 0.5,
             "max_backoff_s": 1}]))
        await notifier.start()
        await notifier.wait_assigned(30)
        await producer.start()
        await producer.send_and_wait(topic, cloudevents.dumps(cloudevents.alert_event(alert("TSLA"))), key=b"fp")
        await good.wait_requests(1, timeout=10)
        await bad.wait_requests(2, timeout=10)
        await asyncio.sleep(0.6)  # commit ticks pass: none may pass the record ``bad`` still owes
        await crash(notifier)

        bad.script = [200]
        since_bad = len(bad.requests)
        notifier = Notifier(settings, refresh_s=0.2, tick_s=0.05, commit_s=0.2)
        await notifier.start()
        await notifier.wait_assigned(30)
        await bad.wait_requests(since_bad + 1, timeout=15)
        assert await wait_until(lambda: lane_stat(notifier, "desk/good", "skipped") == 1, 5)
        assert notifier.consumed == 1  # the record was routed again

        await producer.send_and_wait(topic, cloudevents.dumps(cloudevents.alert_event(alert("TSLA", "resolved"))),
                                     key=b"fp")
        await good.wait_requests(2, timeout=10)
        await bad.wait_requests(since_bad + 2, timeout=10)
        await asyncio.sleep(1.5)  # > group_interval: a repeat would be here by now
        assert types_answered_ok(good, 0) == ["firing", "resolved"]
        assert types_answered_ok(bad, since_bad) == ["firing", "resolved"]
    finally:
        await producer.stop()
        await notifier.stop()
        await clear_keys(r, settings.redis_prefix)
        await good.stop()
        await bad.stop()
