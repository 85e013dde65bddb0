"""Drill: Redis goes away mid-stream and comes back. Processing pauses and resumes; every window
count ends exact (nothing lost, nothing counted twice)."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import redis

from babelwatch.localstack import free_port
from test_crash_drill import outage_drill

pytestmark = pytest.mark.integration


class PrivateRedis:
    """A redis-server of our own with AOF on, restartable on the same port."""

    def __init__(self, tmp_path) -> None:
        self.port = free_port()
        self.dir = tmp_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise TimeoutError("private redis did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: redis flushes its AOF before exiting
            self.proc.wait(10)


def test_redis_outage_pauses_and_resumes_without_loss(world, tmp_path):
    private = PrivateRedis(tmp_path)
    private.start()
    try:
        w = world(triton_model="cheap", redis_url=private.url, window_s=60, batch_size=50,
                  spike_min_count=10**9)
        worker, alive, expected, got = outage_drill(w, "outage", 21, private.stop, private.start, private.url)
        assert alive, "a Redis outage must not kill the worker"
        assert got == expected
        assert "redis unavailable" in worker.log_tail(400)
    finally:
        private.stop()
