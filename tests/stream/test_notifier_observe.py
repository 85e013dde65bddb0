"""The notifier's metrics and probes on the real broker and Redis: consumed, skipped (invalid,
duplicate), notifications per receiver type and outcome with their delivery time, failed
deliveries, the alerts topic's lag back to 0 once committed; readiness before and after the group
join; liveness failing once the consume loop is stuck (and only then)."""
from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from bw_alerting import wait_until
from bw_http import LocalReceiver
from prometheus_client import generate_latest

from contracts.settings import Settings
from stream.notifier import Notifier
from workers.alerting import cloudevents
from workers.alerting.model import AlertInstance
from workers.alerting.store import AlertConfigStore
from workers.alerting.tasks import cancel

pytestmark = pytest.mark.integration


def alert(topic: str) -> AlertInstance:
    t = time.time()
    return AlertInstance(labels={"topic": topic, "language": "*", "detector": "volume_spike", "window": "60s",
                                 "severity": "critical", "stage": "open"},
                         annotations={"summary": "burst"}, state="firing", active_since=t, last_active_at=t,
                         fired_at=t, last_notified_at=t)


async def test_notifier_metrics_and_probes(stack):
    tag = uuid.uuid4().hex[:8]
    topic = f"o{tag}.alerts"
    stack.broker.create_topics({topic: 1, f"{topic}.failed": 1})
    settings = Settings(broker_url=f"kafka://{stack.bootstrap}", redis_url=stack.redis_url,
                        redis_prefix=f"bwtest-o{tag}", app_id=f"bwtest-o{tag}", topic_alerts=topic,
                        topic_alerts_failed=f"{topic}.failed", alerting_allow_private=True, stall_after_s=1.0)
    ok, failing = await LocalReceiver([200]).start(), await LocalReceiver([500]).start()
    notifier = Notifier(settings, refresh_s=0.2, tick_s=0.05, commit_s=0.2)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    r = aioredis.from_url(stack.redis_url)
    v = notifier.registry.get_sample_value
    try:
        assert notifier.ready(True).reason == "not_joined"
        store = AlertConfigStore(r, settings.redis_prefix)
        for rid, url in (("ok", ok.url()), ("bad", failing.url())):
            await store.create_route({"id": rid, "matchers": ['topic="TSLA"'], "group_by": ["topic"],
                                      "group_wait": "0.1s", "group_interval": "1s", "repeat_interval": "1h",
                                      "receivers": [{"type": "webhook", "url": url, "retries": 0}]})
        await notifier.start()
        await notifier.wait_assigned(30)
        assert notifier.ready(True).ok and notifier.ready(False).reason == "dependency_down:redis"
        await producer.start()
        event = cloudevents.dumps(cloudevents.alert_event(alert("TSLA")))
        await producer.send_and_wait(topic, b"not a cloudevent")
        await producer.send_and_wait(topic, event, key=b"k")
        await producer.send_and_wait(topic, event, key=b"k")  # the outbox's re-send: same id
        await ok.wait_requests(1, timeout=10)
        assert await wait_until(lambda: v("babelwatch_notifications_total",
                                          {"receiver_type": "webhook", "outcome": "failed"}) == 1, timeout=10)
        assert v("babelwatch_notifications_total", {"receiver_type": "webhook", "outcome": "delivered"}) == 1
        assert v("babelwatch_notifications_total", {"receiver_type": "kafka", "outcome": "failed"}) == 0
        assert v("babelwatch_notification_delivery_seconds_count", {"receiver_type": "webhook"}) == 2
        assert v("babelwatch_notifier_records_consumed_total") == 1
        assert v("babelwatch_notifier_records_skipped_total", {"reason": "invalid"}) == 1
        assert v("babelwatch_notifier_records_skipped_total", {"reason": "duplicate"}) == 1
        assert v("babelwatch_notifier_failed_deliveries_total") == 1
        assert v("babelwatch_notifier_lanes", {"receiver_type": "webhook"}) == 2
        # every record ended: committed, so the lag falls to 0
        assert await wait_until(lambda: v("babelwatch_consumer_lag_records", {"topic": topic, "partition": "0"}) == 0,
                                timeout=10)
        assert v("babelwatch_live") == 1

        text = generate_latest(notifier.registry)
        out = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"], input=text,
                             capture_output=True, timeout=30)
        assert out.returncode == 0 and not out.stdout.strip(), out.stdout.decode() + out.stderr.decode()

        # the consume loop stops turning (stuck): liveness fails after stall_after_s, not before
        await cancel(notifier._task)
        notifier._task = None
        assert notifier.live().ok
        await asyncio.sleep(1.3)
        p = notifier.live()
        assert not p.ok and p.reason == "stalled" and v("babelwatch_live") == 0
    finally:
        await producer.stop()
        keys = [k async for k in r.scan_iter(f"{settings.redis_prefix}:*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()
        await notifier.stop()
        for rc in (ok, failing):
            await rc.stop()
