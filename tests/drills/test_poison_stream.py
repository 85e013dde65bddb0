"""Issue 8, points 1, 3 and 5 through a real worker: one hostile record fails only itself.

A private Triton serves the `poison` test model (tests/fixtures/triton_poison): a request holding a
text with POISON fails as a whole, as the fusion model did on a 1 x 10,000,000 PNG. Before the
change the worker retried that batch forever and nothing behind it was scored.
"""
from __future__ import annotations

import bw_paths
import signal
import time
from pathlib import Path

import orjson
import pytest
import redis
from kafka import KafkaProducer

from babelwatch.localstack import TritonServer
from test_end_to_end import consume

pytestmark = pytest.mark.integration

POISON_REPO = bw_paths.FIXTURES / "triton_poison"
WINDOW = 60


@pytest.fixture(scope="module")
def poison_triton(tmp_path_factory):
    server = TritonServer(POISON_REPO, run_dir=tmp_path_factory.mktemp("poison-triton")).start()
    yield server
    server.stop()


def produce(bootstrap: str, topic: str, payloads: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for p in payloads:
        producer.send(topic, p)  # no key: spread over partitions, one batch mixes them
    producer.flush()
    producer.close()


def event(i: int, text: str, ts: float, topic: str = "ACME") -> bytes:
    return orjson.dumps({"id": f"e{i}", "source": "news", "topic": topic, "lang": "en", "text": text, "ts": ts})


def test_a_batch_the_model_refuses_dead_letters_only_its_culprit(world, poison_triton):
    w = world(triton_model="poison", triton_url=poison_triton.grpc_url, batch_size=64, spike_min_count=10**9)
    w.start_worker("poison")
    now = time.time()
    payloads = [event(i, f"ACME shares move {i}", now - 30) for i in range(12)]
    payloads.insert(5, event(99, "POISON pill", now - 30))
    payloads += [event(100 + i, f"ACME later {i}", now - 20) for i in range(12)]
    t0 = time.monotonic()
    produce(w.stack.bootstrap, w.topics["events"], payloads)
    scored = consume(w.stack.bootstrap, w.topics["scored"], want=24, timeout=60)
    elapsed = time.monotonic() - t0
    dead = consume(w.stack.bootstrap, w.topics["deadletter"], want=1, timeout=10)
    assert sorted(s["id"] for s in scored) == sorted({f"e{i}" for i in range(12)} | {f"e{100 + i}" for i in range(12)})
    assert [(d["reason"], d["event_id"]) for d in dead] == [("scoring_failed", "e99")]
    assert "OverflowError" in dead[0]["errors"][0]["msg"]
    assert elapsed < 30, f"a poisoned batch cost {elapsed:.1f} s"
    r = redis.Redis.from_url(w.stack.redis_url)
    total = sum(int(r.hget(k, "count")) for k in r.scan_iter(f"{w.prefix}:w:{WINDOW}:ACME:*:*")
                if k.decode().split(":")[-2] == "*")
    r.close()
    assert total == 24  # every valid event counted once, the culprit not at all


def test_an_event_dated_2255_is_dead_lettered_and_blinds_nothing(world):
    w = world(triton_model="cheap", batch_size=16, spike_min_count=10**9)
    w.start_worker("future")
    now = time.time()
    produce(w.stack.bootstrap, w.topics["events"], [event(0, "from the future", 9_000_000_000.0, topic="FUT")])
    dead = consume(w.stack.bootstrap, w.topics["deadletter"], want=1, timeout=60)
    produce(w.stack.bootstrap, w.topics["events"], [event(i, f"now {i}", now - 5, topic="FUT") for i in range(1, 11)])
    scored = consume(w.stack.bootstrap, w.topics["scored"], want=10, timeout=60)
    late = consume(w.stack.bootstrap, w.topics["late"], want=0, timeout=1)
    assert [(d["reason"], d["event_id"]) for d in dead] == [("future_timestamp", "e0")]
    assert len(scored) == 10 and late == []
    r = redis.Redis.from_url(w.stack.redis_url)
    start = int((now - 5) // WINDOW * WINDOW)
    count = r.hget(f"{w.prefix}:w:{WINDOW}:FUT:*:{start}", "count")
    wm = float(r.hget(f"{w.prefix}:wm", "FUT"))
    r.close()
    assert int(count) == 10
    assert wm <= time.time()


def test_garbage_on_the_closed_windows_topic_is_dead_lettered_and_detection_goes_on(world):
    w = world(triton_model="cheap", batch_size=16, spike_min_count=10**9)
    worker = w.start_worker("closed-garbage")
    garbage = [b"not json", b"[]", orjson.dumps({"topic": "X"}),
               orjson.dumps({"topic": "X", "lang": "*", "start": 0, "size_s": 0, "count": 1}),
               orjson.dumps({"topic": "X", "lang": "*", "start": 0, "size_s": 60, "count": 1, "sentiment_sum": "nan"})]
    produce(w.stack.bootstrap, w.topics["closed_windows"], garbage)
    dead = consume(w.stack.bootstrap, w.topics["deadletter"], want=len(garbage), timeout=60)
    assert len(dead) == len(garbage)
    assert {d["reason"] for d in dead} == {"invalid_event"}
    assert all(d["errors"][0]["loc"] == "closed_window" for d in dead)
    produce(w.stack.bootstrap, w.topics["events"], [event(1, "still alive", time.time(), topic="ALIVE")])
    assert len(consume(w.stack.bootstrap, w.topics["scored"], want=1, timeout=60)) == 1
    assert worker.alive


def test_sigterm_is_honoured_within_seconds_while_triton_is_down(world, tmp_path):
    server = TritonServer(POISON_REPO, run_dir=tmp_path / "t").start()
    try:
        w = world(triton_model="poison", triton_url=server.grpc_url, batch_size=16, spike_min_count=10**9)
        worker = w.start_worker("sigterm")
        deadline = time.monotonic() + 60
        while "pipeline ready" not in worker.log_tail(400) and time.monotonic() < deadline:
            time.sleep(0.2)
        server.stop()
        produce(w.stack.bootstrap, w.topics["events"], [event(i, f"waiting {i}", time.time()) for i in range(5)])
        def retrying() -> bool:  # down (UNAVAILABLE), or stopping (model unloaded: not ready)
            log = worker.log_tail(200)
            return "triton infer failed" in log or "dependency unavailable" in log

        deadline = time.monotonic() + 30
        while not retrying() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert retrying(), f"the worker must be mid-retry:\n{worker.log_tail(60)}"
        proc = worker.process.proc
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except Exception:
            pass
        took = time.monotonic() - t0
        assert proc.poll() is not None and took < 10, f"SIGTERM took {took:.1f} s:\n{worker.log_tail(60)}"
    finally:
        server.stop()
