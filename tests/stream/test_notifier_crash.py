"""`babelwatch notify` SIGKILLed while a webhook delivery is still being retried, twice (once
owing a firing notification, once a resolved one), and restarted: the subscriber ends up with the
firing and the resolved notification, each exactly once. Real broker, Redis and HTTP receiver."""
from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from bw_http import LocalReceiver

from workers.alerting import cloudevents
from workers.alerting.store import AlertConfigStore
from test_notifier import alert, route

pytestmark = pytest.mark.integration


def answered_ok(hook: LocalReceiver, since: int) -> list[str]:
    return [json.loads(q.body)["type"].rsplit(".", 1)[1] for q in hook.requests[since:]]


async def test_killed_notifier_delivers_what_it_owed_once_after_restart(world):
    w = world(alerting_allow_private=True)
    hook = await LocalReceiver([500]).start()
    producer = AIOKafkaProducer(bootstrap_servers=w.stack.bootstrap)
    r = aioredis.from_url(w.stack.redis_url)
    alerts_topic = w.topics["alerts"]

    async def owe(state: str) -> None:
        """Send the alert's ``state`` event while the hook fails, and kill the notifier then."""
        hook.script = [500]
        n = len(hook.requests)
        await producer.send_and_wait(alerts_topic, cloudevents.dumps(cloudevents.alert_event(alert("TSLA", state))),
                                     key=b"fp")
        await hook.wait_requests(n + 2, timeout=30)  # failing and being retried
        await asyncio.sleep(2.5)  # commit ticks (1 s) pass; none may pass the owed record
        await asyncio.to_thread(notifier.kill)
        hook.script = [200]

    try:
        await AlertConfigStore(r, w.prefix).create_route(route("desk", "TSLA", [
            {"type": "webhook", "url": hook.url("/desk"), "retries": 10, "backoff_s": 1, "max_backoff_s": 2}]))
        await producer.start()
        notifier = await asyncio.to_thread(w.launch_notifier().wait_ready)

        await owe("firing")
        since = len(hook.requests)
        notifier = await asyncio.to_thread(w.launch_notifier("notifier-2").wait_ready, 90)
        await hook.wait_requests(since + 1, timeout=30)
        await asyncio.sleep(2.5)  # a second copy would be here by now; the firing record gets committed
        assert answered_ok(hook, since) == ["firing"]

        await owe("resolved")  # the firing record is committed: the next notifier never sees it
        since = len(hook.requests)
        notifier = await asyncio.to_thread(w.launch_notifier("notifier-3").wait_ready, 90)
        await hook.wait_requests(since + 1, timeout=30)
        await asyncio.sleep(2.5)
        assert answered_ok(hook, since) == ["resolved"], notifier.log_tail()
    finally:
        await producer.stop()
        await r.aclose()
        await hook.stop()
