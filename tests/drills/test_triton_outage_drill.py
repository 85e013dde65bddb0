"""Drill: Triton goes away mid-stream and comes back on the same address. Scoring pauses (the
client retries with backoff) and resumes; every window count ends exact and every event scored."""
from __future__ import annotations

import bw_paths
import shutil
from pathlib import Path

import pytest

from babelwatch.localstack import TritonServer
from test_crash_drill import outage_drill

pytestmark = pytest.mark.integration

CHEAP = bw_paths.REPO / "triton_repo" / "models" / "cheap"


def test_triton_outage_pauses_and_resumes_without_loss(world, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(CHEAP, repo / "cheap")  # a private server: only the cheap model, starts in ~2 s
    first = TritonServer(repo, run_dir=tmp_path / "t1").start()
    ports = dict(http_port=first.http_port, grpc_port=first.grpc_port, metrics_port=first.metrics_port)
    servers: list[TritonServer] = []
    try:
        w = world(triton_model="cheap", triton_url=first.grpc_url, window_s=60, batch_size=50,
                  spike_min_count=10**9)
        def restart() -> None:
            servers.append(TritonServer(repo, run_dir=tmp_path / "t2", **ports).start())

        worker, alive, expected, got = outage_drill(w, "triton-outage", 31, first.stop, restart, w.stack.redis_url)
        assert alive, "a Triton outage must not kill the worker"
        assert got == expected
        assert "triton infer failed" in worker.log_tail(400)
    finally:
        first.stop()
        for server in servers:
            server.stop()
