"""Drill: Triton goes away mid-stream and comes back on the same address. Scoring pauses (the
client retries with backoff) and resumes; every window count ends exact and every event scored."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import redis

from babelwatch.localstack import TritonServer
from test_crash_drill import make_events, produce_paced, wait_for

pytestmark = pytest.mark.integration

CHEAP = Path(__file__).resolve().parents[2] / "triton_repo" / "models" / "cheap"


def test_triton_outage_pauses_and_resumes_without_loss(world, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(CHEAP, repo / "cheap")  # a private server: only the cheap model, starts in ~2 s
    first = TritonServer(repo, run_dir=tmp_path / "t1").start()
    ports = dict(http_port=first.http_port, grpc_port=first.grpc_port, metrics_port=first.metrics_port)
    second = None
    try:
        w = world(triton_model="cheap", triton_url=first.grpc_url, window_s=60, batch_size=50,
                  spike_min_count=10**9)
        events, expected, starts = make_events(1500, seed=31)
        worker = w.start_worker("triton-outage")
        producer = produce_paced(w.stack.bootstrap, w.topics["events"], events, seconds=8)
        time.sleep(2.5)
        first.stop()
        time.sleep(4)
        assert worker.alive, "a Triton outage must not kill the worker"
        second = TritonServer(repo, run_dir=tmp_path / "t2", **ports).start()
        producer.join(60)
        r = redis.Redis.from_url(w.stack.redis_url)
        got = wait_for(r, w.prefix, starts, expected, timeout=120)
        r.close()
        assert got == expected
        assert "triton infer failed" in worker.log_tail(400)
    finally:
        first.stop()
        if second is not None:
            second.stop()
