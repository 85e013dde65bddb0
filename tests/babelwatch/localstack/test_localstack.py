"""Integration tests for babelwatch.localstack against the real binaries (Tansu, redis-server, Triton)."""

from __future__ import annotations

import bw_paths
import glob
import logging
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from babelwatch.localstack import (
    LocalStack, RedisServer, StartupFailed, TansuBroker, TritonServer, free_port,
)

ECHO_REPO = bw_paths.FIXTURES / "triton_echo_repo"
MACHINE_REDIS = "redis://127.0.0.1:6379/0"

log = logging.getLogger("babelwatch.localstack")


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.ConnectionError, redis.TimeoutError):
        return False


# --- broker -------------------------------------------------------------------------------------

@pytest.fixture
def broker(tmp_path):
    b = TansuBroker(run_dir=tmp_path / "broker").start()
    yield b
    b.stop()


def test_broker_roundtrip_and_stop(broker):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    log.info("broker ready in %.2fs", broker.ready_seconds)
    topic = "bw-test-events"
    broker.create_topics({topic: 2})
    broker.create_topics({topic: 2})  # idempotent

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for i in range(10):
        producer.send(topic, value=f"msg-{i}".encode(), partition=i % 2)
    producer.flush(10)
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id=None, auto_offset_reset="earliest",
        enable_auto_commit=False, consumer_timeout_ms=1000,
    )
    consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
    got, deadline = [], time.monotonic() + 20
    while len(got) < 10 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend((r.partition, r.value.decode()) for r in records)
    consumer.close()

    assert sorted(v for _, v in got) == sorted(f"msg-{i}" for i in range(10))
    assert {p for p, _ in got} == {0, 1}

    pid = broker.process.pid
    broker.stop()
    assert _pid_gone(pid)


# --- redis --------------------------------------------------------------------------------------

@pytest.fixture
def redis_server(tmp_path):
    r = RedisServer(run_dir=tmp_path / "redis")
    yield r
    r.stop()


def test_redis_reuses_machine_redis(redis_server):
    if not _pings(MACHINE_REDIS):
        pytest.skip("no Redis on 127.0.0.1:6379 on this machine")
    assert redis_server.ensure(MACHINE_REDIS) == MACHINE_REDIS
    assert redis_server.owned is False
    redis_server.stop()
    assert _pings(MACHINE_REDIS), "stop() must never touch a Redis it did not start"


def test_redis_starts_own_when_nothing_answers(redis_server):
    wanted = f"redis://127.0.0.1:{free_port()}/0"
    url = redis_server.ensure(wanted)
    log.info("own redis ready in %.2fs", redis_server.ready_seconds)
    assert redis_server.owned is True
    assert redis_server.url == url
    assert _pings(url)
    pid = redis_server.process.pid
    redis_server.stop()
    assert _pid_gone(pid)
    assert not _pings(url)


# --- triton -------------------------------------------------------------------------------------

@pytest.fixture
def triton(tmp_path):
    t = TritonServer(ECHO_REPO, run_dir=tmp_path / "triton").start()
    yield t
    t.stop()


def test_triton_echo_infer_and_cleanup(triton):
    import tritonclient.grpc as grpcclient

    log.info("triton ready in %.2fs", triton.ready_seconds)
    texts = ["hello", "héllo wörld", "日本語"]
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    inp = grpcclient.InferInput("TEXT", [3, 1], "BYTES")
    inp.set_data_from_numpy(np.array([[t.encode()] for t in texts], dtype=object))
    result = client.infer("echo", [inp], outputs=[grpcclient.InferRequestedOutput("LEN")])
    client.close()
    lengths = result.as_numpy("LEN")
    assert lengths.shape == (3, 1)
    assert lengths[:, 0].tolist() == [len(t.encode()) for t in texts]

    assert triton.leftover_shm(), "expected shm regions under our own prefix while running"
    pid = triton.process.pid
    triton.stop()
    assert _pid_gone(pid)
    assert glob.glob(f"/dev/shm/{triton.shm_prefix}*") == []


# --- the whole stack ----------------------------------------------------------------------------

def test_localstack_starts_and_stops_all(tmp_path):
    with LocalStack(redis_url=f"redis://127.0.0.1:{free_port()}/0", triton_repo=ECHO_REPO,
                    run_dir=tmp_path, topics={"bw-stack": 2}) as stack:
        assert stack.bootstrap.startswith("127.0.0.1:")
        assert _pings(stack.redis_url)
        assert stack.triton_grpc_url.startswith("127.0.0.1:")
        pids = [stack.broker.process.pid, stack.redis.process.pid, stack.triton.process.pid]
    assert all(_pid_gone(p) for p in pids)


def test_localstack_failure_stops_what_started(tmp_path):
    bad_repo = tmp_path / "bad_repo" / "broken"
    (bad_repo / "1").mkdir(parents=True)
    (bad_repo / "config.pbtxt").write_text('backend: "python"\nmax_batch_size: 0\n')  # no model.py
    stack = LocalStack(redis_url=f"redis://127.0.0.1:{free_port()}/0", triton_repo=bad_repo.parent,
                       run_dir=tmp_path / "run", triton_timeout=45)
    t0 = time.monotonic()
    with pytest.raises(StartupFailed, match="stub"):  # fails fast, not after Triton's 90 s hang
        stack.start()
    assert time.monotonic() - t0 < 30
    assert stack.broker.process is None and stack.redis.process is None and stack.triton.process is None
    with socket.socket() as s:  # the broker's port is closed again
        assert s.connect_ex(("127.0.0.1", stack.broker.port)) != 0
