"""``babelwatch status`` against a running deployment (real broker, Redis, Triton, a `babelwatch
notify` process): lag per partition from fetch high-waters, the notifier's group member, dead
letters and late events of the last hour by reason and topic, active alerts, each dependency's
health; with no worker answering, the exit status says so."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
import redis.asyncio as aioredis
from kafka import KafkaProducer

from babelwatch.localstack.process import free_port
from bw_paths import REPO
from workers.alerting.lifecycle import AlertLifecycle, Timing
from workers.alerting.state_store import RedisAlertStateStore
from workers.alerts import AlertEvaluator, WindowVerdict
from workers.detectors.base import Verdict

pytestmark = pytest.mark.integration


async def fire_alert(redis_url: str, prefix: str) -> None:
    r = aioredis.from_url(redis_url)
    try:
        alerts = AlertEvaluator(AlertLifecycle(RedisAlertStateStore(r, prefix), Timing(0.0, 0.0, 300.0)))
        now = time.time()
        await alerts.evaluate([WindowVerdict("TSLA", "en", 60, now // 60 * 60,
                                             Verdict("volume_spike", 9.0, 4.0, 5.0, 1.0, True, "spike"))], now=now)
    finally:
        await r.aclose()


def test_status_reports_lag_groups_last_hour_alerts_and_health(world):
    w = world()
    notifier = w.launch_notifier().wait_ready()
    asyncio.run(fire_alert(w.stack.redis_url, w.prefix))
    producer = KafkaProducer(bootstrap_servers=w.stack.bootstrap)
    for i in range(6):
        producer.send(w.topics["events"], b'{"id": "x"}', partition=i % 4)
    for reason in ("not_json", "not_json", "invalid_event"):
        producer.send(w.topics["deadletter"], json.dumps({"reason": reason, "raw": "x"}).encode())
    producer.send(w.topics["late"], json.dumps({"topic": "TSLA", "id": "l1"}).encode())
    producer.send(w.topics["late"], b"\xff not json")  # counted, as unreadable
    producer.flush()
    producer.close()

    env = {**w.env, "BABELWATCH_API_PORT": str(notifier.port), "BABELWATCH_WORKER_METRICS_PORT": str(free_port()),
           "BABELWATCH_WORKER_METRICS_PORTS": "1"}
    import os
    out = subprocess.run([sys.executable, "-m", "babelwatch", "--log-level", "error", "status", "--json"],
                         capture_output=True, timeout=120, cwd=REPO, env={**os.environ, **env})
    report = json.loads(out.stdout)
    assert out.returncode == 1, out.stderr.decode()  # no worker answers
    h = report["health"]
    assert {k: v["ok"] for k, v in h.items()} == {"redis": True, "triton": True, "kafka": True, "notifier": True,
                                                  "workers": False}
    lag = {r["partition"]: r for r in report["lag"]["events"]}
    assert sorted(lag) == [0, 1, 2, 3]
    assert sum(r["lag"] for r in lag.values()) == 6 and all(r["committed"] is None for r in lag.values())
    assert report["groups"]["alerts"]["members"] and len(report["groups"]["alerts"]["members"]) == 1
    assert report["groups"]["events"]["members"] == []  # no worker
    assert report["last_hour"]["dead_letters"]["count"] == 3
    assert report["last_hour"]["dead_letters"]["by"] == {"not_json": 2, "invalid_event": 1}
    assert report["last_hour"]["late"]["count"] == 2
    assert report["last_hour"]["late"]["by"] == {"TSLA": 1, "unreadable": 1}
    [active] = report["active_alerts"]
    assert active["state"] == "firing" and active["labels"]["topic"] == "TSLA"

    # the tables render the same report
    table = subprocess.run([sys.executable, "-m", "babelwatch", "--log-level", "error", "status"],
                           capture_output=True, timeout=120, cwd=REPO, env={**os.environ, **env})
    text = table.stdout.decode()
    assert table.returncode == 1 and "active alerts: 1" in text and "not_json 2" in text
