"""Observability with the real tools: a real Prometheus scrapes a running babelwatch (the notifier +
API process, a worker process, a Triton of its own, Redis through Debian's redis exporter) and
evaluates deploy/prometheus/rules.yml; every query of deploy/grafana/babelwatch.json and every rule
expression runs through Prometheus' HTTP API and must neither error nor come back empty (rules:
every series they read must exist); then Triton is stopped and the self-alerts fire in Prometheus
and reach a real Alertmanager (listed by amtool).

The rules run with every ``for:`` at 0 s (a test cannot wait minutes); their expressions are the
deployed ones."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from kafka import KafkaProducer

from babelwatch.localstack.process import free_port, wait_until
from babelwatch.localstack.triton import SERVED_MODELS, TritonServer
from bw_prometheus import (Alertmanager, Prometheus, RedisExporter, dashboard_queries, get_json, rule_exprs,
                           rules_without_for, series_names, RULES)
from conftest import MODELS
from workers.alerting import cloudevents
from workers.alerting.model import AlertInstance

pytestmark = pytest.mark.integration


def scraped_names(url: str) -> set[str]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def alert_event(topic: str) -> bytes:
    t = time.time()
    a = AlertInstance(labels={"topic": topic, "language": "*", "detector": "volume_spike", "window": "60s",
                              "severity": "critical", "stage": "open"}, annotations={"summary": "burst"},
                      state="firing", active_since=t, last_active_at=t, fired_at=t, last_notified_at=t)
    return cloudevents.dumps(cloudevents.alert_event(a))


def subscribe(world, url: str) -> None:
    """A subscription whose webhook fails (a closed port): notifications end as failed."""
    import redis.asyncio as aioredis

    from workers.alerting.store import AlertConfigStore

    async def go() -> None:
        r = aioredis.from_url(world.stack.redis_url)
        try:
            await AlertConfigStore(r, world.prefix).create_route({
                "id": "ops", "matchers": ['topic="TSLA"'], "group_by": ["topic"], "group_wait": "0.1s",
                "group_interval": "1s", "repeat_interval": "1h",
                "receivers": [{"type": "webhook", "url": url, "retries": 0}]})
        finally:
            await r.aclose()
    asyncio.run(go())


@pytest.fixture
def own_triton(tmp_path):
    """A Triton of this test's own: it is stopped half-way (the session's Triton must stay up)."""
    t = TritonServer(MODELS, run_dir=tmp_path / "triton", load_models=SERVED_MODELS).start(timeout=120)
    yield t
    t.stop()


@pytest.fixture
def tools(tmp_path, stack):
    started = []

    def start(thing):
        started.append(thing)
        return thing.start()

    am = start(Alertmanager(tmp_path))
    exporter = start(RedisExporter(tmp_path, stack.redis_url))
    yield am, exporter, start
    for thing in reversed(started):
        thing.stop()


def wait_targets_up(prom: Prometheus, want: int, timeout: float = 60.0) -> None:
    wait_until(lambda: sum(h == "up" for h in prom.targets_up().values()) >= want, timeout, 0.5,
               f"{want} scrape targets up: {prom.targets_up()}", prom.process)


def check_queries(prom: Prometheus, queries: list[tuple[str, str]]) -> None:
    """Each query answers without error and with at least one series."""
    empty = []
    for title, expr in queries:
        if not prom.query(expr):
            empty.append(f"{title}: {expr}")
    assert not empty, "queries that returned nothing:\n" + "\n".join(empty)


def check_rules(prom: Prometheus, available: set[str] | None = None) -> None:
    """Every rule expression evaluates, and every series it reads exists (or, with ``available``,
    every series it reads that the running processes export)."""
    missing = []
    for name, expr in rule_exprs():
        prom.query(expr)  # raises on an error
        for series in series_names(expr):
            if available is not None and series not in available:
                continue
            if not prom.query(f"count({series})"):
                missing.append(f"{name}: {series}")
    assert not missing, "rules read series that do not exist:\n" + "\n".join(missing)


def wait_alert(prom: Prometheus, am: Alertmanager, name: str, timeout: float = 90.0, **labels: str) -> None:
    def firing_in_prometheus() -> bool:
        return any(a["labels"]["alertname"] == name and a["state"] == "firing"
                   and all(a["labels"].get(k) == v for k, v in labels.items()) for a in prom.alerts())

    wait_until(firing_in_prometheus, timeout, 0.5, f"{name} firing in Prometheus", prom.process)

    def in_alertmanager() -> bool:
        return any(a["labels"]["alertname"] == name and all(a["labels"].get(k) == v for k, v in labels.items())
                   for a in am.alerts())

    wait_until(in_alertmanager, 30, 0.5, f"{name} received by Alertmanager (amtool alert query)")


def test_notifier_triton_redis_scraped_queries_answer_and_an_alert_reaches_alertmanager(
        world, tools, own_triton, tmp_path):
    am, exporter, start = tools
    w = world(alerting_allow_private="true")
    subscribe(w, f"http://127.0.0.1:{free_port()}/hook")
    notifier = w.launch_notifier().wait_ready()
    targets = {"babelwatch-notifier": [f"127.0.0.1:{notifier.port}"],
               "triton": [f"127.0.0.1:{own_triton.metrics_port}"], "redis": [f"127.0.0.1:{exporter.port}"]}
    prom = start(Prometheus(tmp_path, targets, rules_without_for(RULES, tmp_path / "rules.yml"),
                            f"127.0.0.1:{am.port}"))
    wait_targets_up(prom, 3)
    # after the first scrape: a counter Prometheus first sees at 1 has no rate
    producer = KafkaProducer(bootstrap_servers=w.stack.bootstrap)
    producer.send(w.topics["alerts"], alert_event("TSLA"), key=b"k")
    producer.send(w.topics["alerts"], b"not a cloudevent")
    producer.flush()
    producer.close()
    # the failing webhook's notification has ended (counted) before the figures are compared
    wait_until(lambda: prom.query('sum(babelwatch_notifications_total{outcome="failed"}) > 0'), 30, 0.5,
               "the failed delivery counted")
    time.sleep(3)  # rates need two samples of the counters moved
    exported = set()
    for url in (f"{notifier.url}/metrics", f"http://127.0.0.1:{own_triton.metrics_port}/metrics",
                f"http://127.0.0.1:{exporter.port}/metrics"):
        exported |= scraped_names(url)
    exported.add("up")
    mine = [(t, e) for t, e in dashboard_queries() if series_names(e) <= exported]
    assert len(mine) >= 20, mine  # the notifier's, Triton's, Redis', the processes'
    check_queries(prom, mine)
    check_rules(prom, exported)

    # a receiver that fails, and then Triton gone: the self-alerts fire and reach Alertmanager
    wait_alert(prom, am, "BabelwatchNotifierDeliveryFailures", receiver_type="webhook")
    own_triton.stop()
    wait_alert(prom, am, "BabelwatchTargetDown", job="triton")
    status = get_json(f"{notifier.url}/ready")
    assert status["status"] == "ready"


def produce_events(producer: KafkaProducer, topic: str, ts: float, n: int, tag: str) -> None:
    langs = ["en", "de", "fr"]
    for i in range(n):
        ev = {"id": f"{tag}-{i}", "source": "news", "topic": ["AAPL", "TSLA"][i % 2], "lang": langs[i % 3],
              "text": "Shares rallied after record profit" if i % 2 else "Die Aktie fiel deutlich", "ts": ts}
        producer.send(topic, json.dumps(ev).encode())
    producer.flush()


def test_whole_stack_every_dashboard_query_and_rule_answers_and_a_stalled_worker_alerts(
        world, tools, own_triton, tmp_path):
    am, exporter, start = tools
    metrics_port = free_port()
    w = world(alerting_allow_private="true", worker_metrics_port=metrics_port, worker_metrics_ports=1,
              stall_after_s=5, health_check_interval_s=0.5, window_s=2, extra_windows="",
              allowed_lateness_s=1, triton_url=own_triton.grpc_url)
    subscribe(w, f"http://127.0.0.1:{free_port()}/hook")
    notifier = w.launch_notifier()
    worker = w.start_worker()
    notifier.wait_ready()
    wait_until(lambda: "metrics and probes on" in worker.process.log_path.read_text(errors="replace"), 30, 0.5,
               "the worker serving /metrics (stream/agents.py runs stream.observe.WorkerObserver)", worker.process)
    wait_until(lambda: get_json(f"http://127.0.0.1:{metrics_port}/ready")["status"] == "ok", 30, 0.5,
               "worker ready", worker.process)

    producer = KafkaProducer(bootstrap_servers=w.stack.bootstrap)
    producer.send(w.topics["events"], b"not json")  # a dead letter
    t0 = time.time()
    produce_events(producer, w.topics["events"], t0 - 6, 24, "a")
    time.sleep(3)
    produce_events(producer, w.topics["events"], time.time(), 24, "b")  # closes the first windows
    time.sleep(2)
    produce_events(producer, w.topics["events"], t0 - 120, 4, "late")  # far behind the watermark
    produce_events(producer, w.topics["events"], time.time(), 24, "c")

    targets = {"babelwatch-worker": [f"127.0.0.1:{metrics_port}"],
               "babelwatch-notifier": [f"127.0.0.1:{notifier.port}"],
               "triton": [f"127.0.0.1:{own_triton.metrics_port}"], "redis": [f"127.0.0.1:{exporter.port}"]}
    prom = start(Prometheus(tmp_path, targets, rules_without_for(RULES, tmp_path / "rules.yml"),
                            f"127.0.0.1:{am.port}"))
    wait_targets_up(prom, 4)
    producer.send(w.topics["alerts"], alert_event("TSLA"), key=b"k")  # after the first scrape (rates)
    producer.flush()
    wait_until(lambda: prom.query("sum(babelwatch_events_late_total) > 0")
               and prom.query("sum(babelwatch_windows_closed_total) > 0")
               and prom.query('sum(babelwatch_notifications_total{outcome="failed"}) > 0'), 60, 0.5,
               "late events, closed windows and the failed delivery counted", worker.process)
    time.sleep(3)
    check_queries(prom, dashboard_queries())
    check_rules(prom)
    text = get_json(f"http://127.0.0.1:{metrics_port}/live")
    assert text["status"] == "ok"

    # Triton gone while records wait: the worker waits (nothing dropped), is unready at once and,
    # after BABELWATCH_STALL_AFTER_S, not live: the stall alert fires and reaches Alertmanager
    own_triton.stop()
    produce_events(producer, w.topics["events"], time.time(), 24, "d")
    producer.close()
    wait_alert(prom, am, "BabelwatchTritonUnreachable", job="babelwatch-worker")
    wait_alert(prom, am, "BabelwatchWorkerStalled", job="babelwatch-worker")
    assert worker.alive  # stalled, not dead: the process waits for Triton
    assert prom.query('ALERTS{alertstate="firing", alertname=~"Babelwatch.*"}')  # the dashboard's annotation
