"""stream/observe.py, the worker's /metrics, /live and /ready, served for real on a free port and fed
by a batch source as stream/agents.py exposes it (observers, lag(), assigned(), last_batch_done_at):
each readiness state, the stalled liveness state, lag on /metrics, the port range, and the Redis
figures (outbox depths, shared counters, watermarks) read from the real Redis."""
from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid

import httpx
import pytest
import redis.asyncio as aioredis

from babelwatch.localstack.process import free_port
from bw_factories import make_scored
from contracts.keys import RedisKeys
from contracts.settings import Settings
from stream.observe import WorkerObserver, redis_check
from workers.pipeline import BatchResult

REDIS_URL = "redis://127.0.0.1:6379/0"


class BatchSource:
    """The batch source's observable face (stream/batches.py), driven by the test."""

    def __init__(self) -> None:
        self.observers: list = []
        self.lags: dict[tuple[str, int], int] = {}
        self.parts: list[tuple[str, int]] = []
        self.last_batch_done_at: float | None = None

    def lag(self):
        return dict(self.lags)

    def assigned(self):
        return list(self.parts)

    def batch_done(self, result: BatchResult, n: int) -> None:
        self.last_batch_done_at = time.monotonic()
        for observe in self.observers:
            observe(result, n, 0.01)


def settings(port: int, prefix: str, **kw) -> Settings:
    return Settings(redis_url=REDIS_URL, redis_prefix=prefix, worker_metrics_port=port, worker_metrics_ports=4,
                    triton_url="127.0.0.1:1", stall_after_s=0.5, health_check_interval_s=0.1,
                    topic_events="bw.events", **kw)


@pytest.fixture
async def redis_prefix():
    prefix = f"bwtest-obs-{uuid.uuid4().hex[:8]}"
    r = aioredis.from_url(REDIS_URL)
    yield r, prefix
    keys = [k async for k in r.scan_iter(f"{prefix}:*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


async def until(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_ready_live_and_metrics_through_every_state(redis_prefix) -> None:
    _, prefix = redis_prefix
    source = BatchSource()
    obs = WorkerObserver(settings(free_port(), prefix), source)  # Triton at a closed port: down
    await obs.start()
    try:
        base = f"http://127.0.0.1:{obs.server.port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as c:
            assert obs.observe in source.observers  # wired itself to the source
            r = await c.get("/ready")
            assert r.status_code == 503 and r.json()["reason"] == "not_joined"
            source.parts = [("bw.events", 0), ("bw.events", 1)]

            async def triton_down() -> bool:
                r = await c.get("/ready")
                return r.status_code == 503 and r.json()["reason"] == "dependency_down:triton"
            await until(triton_down)
            assert (await c.get("/ready")).json()["dependencies"] == {"redis": "up", "triton": "down"}

            # idle with nothing waiting: alive, however long
            await asyncio.sleep(0.6)
            assert (await c.get("/live")).status_code == 200
            # records wait and no batch finishes for stall_after_s: stalled
            source.lags = {("bw.events", 0): 7, ("bw.events", 1): 0}
            r = await c.get("/live")
            assert r.status_code == 503 and r.json()["reason"] == "stalled" and r.json()["lag"] == 7
            # a batch finishes: alive again, and counted
            source.batch_done(BatchResult(scored=[make_scored("AAPL", "en", "positive")]), 3)
            assert (await c.get("/live")).status_code == 200
            await asyncio.sleep(0.6)
            assert (await c.get("/live")).status_code == 503  # stuck again

            text = (await c.get("/metrics")).text
            assert 'babelwatch_consumer_lag_records{partition="0",topic="bw.events"} 7.0' in text
            assert "babelwatch_assigned_partitions 2.0" in text
            assert 'babelwatch_events_consumed_total{topic="bw.events"} 3.0' in text
            assert 'babelwatch_events_scored_total{label="positive",lang="en"} 1.0' in text
            assert 'babelwatch_dependency_up{dependency="triton"} 0.0' in text
            assert 'babelwatch_dependency_up{dependency="redis"} 1.0' in text
            assert 'babelwatch_build_info{component="worker"' in text
            assert "process_cpu_seconds_total" in text
            promtool = shutil.which("promtool")
            assert promtool, "promtool missing: make setup installs Debian's prometheus"
            out = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
            assert out.returncode == 0 and not out.stdout.strip(), out.stdout.decode() + out.stderr.decode()
    finally:
        await obs.stop()


async def test_ready_when_joined_and_every_dependency_answers(redis_prefix) -> None:
    r, prefix = redis_prefix
    source = BatchSource()
    source.parts = [("bw.events", 3)]

    async def triton_ok() -> bool:
        return True
    obs = WorkerObserver(settings(free_port(), prefix), source,
                         checks={"redis": redis_check(r), "triton": triton_ok})
    await obs.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{obs.server.port}", timeout=5) as c:
            async def ready() -> bool:
                return (await c.get("/ready")).status_code == 200
            await until(ready)
            assert (await c.get("/ready")).json()["reason"] == "ok"
    finally:
        await obs.stop()


async def test_takes_the_next_free_port_and_runs_without_when_none(redis_prefix) -> None:
    _, prefix = redis_prefix
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        s = settings(port, prefix)
        obs = WorkerObserver(s.model_copy(update={"worker_metrics_ports": 1}))
        await obs.start()  # the only port is taken: no server, no crash
        assert obs.server.port is None
        await obs.stop()
        obs = WorkerObserver(s)
        await obs.start()
        try:
            assert obs.server.port is not None and obs.server.port != port
            assert port < obs.server.port < port + 4
        finally:
            await obs.stop()
    finally:
        taken.close()


async def test_redis_figures_outboxes_counters_watermarks(redis_prefix) -> None:
    r, prefix = redis_prefix
    keys = RedisKeys(prefix)
    await r.rpush(keys.closed_outbox, b"a", b"b")
    await r.rpush(keys.alerts_outbox, b"x")
    await r.hset(keys.stats, mapping={"late": 4, "redelivered_skipped": 2})
    await r.hset(keys.watermarks, mapping={"AAPL": 1000.0, "bad topic\n": 5.0})
    obs = WorkerObserver(settings(0, prefix, allowed_lateness_s=300.0))
    await obs.start()
    try:
        await obs.check_once()
        v = obs.registry.get_sample_value
        assert v("babelwatch_outbox_depth", {"outbox": "closed_windows"}) == 2
        assert v("babelwatch_outbox_depth", {"outbox": "alerts"}) == 1
        assert v("babelwatch_stream_stat", {"name": "late"}) == 4
        assert v("babelwatch_watermark_timestamp_seconds", {"topic": "AAPL"}) == 700.0
        assert v("babelwatch_watermark_timestamp_seconds", {"topic": "_other"}) == -295.0  # unsafe name: bounded
        assert obs.server is None  # port 0: no server
    finally:
        await obs.stop()
