"""Rebalance drill for the events topic's batch source (stream/batches.py): members join and leave
mid-stream; every window count ends exact.

The Redis sink skips offsets at or below a per-partition high-water mark, so a batch applied out of
partition order, or a partition read by two members at once, would lose counts silently; a batch
abandoned in a rebalance and never delivered again would lose them too. Commits every 30 s: the
commits a revoke makes are what moves the partitions without a large redelivery.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from babelwatch.localstack.process import wait_until
from test_crash_drill import make_events, produce_paced, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_a_member_joining_then_leaving_mid_stream_counts_exactly(world):
    w = world(triton_model="cheap", window_s=60, batch_size=50, spike_min_count=10**9, commit_interval_s=30)
    events, expected, starts = make_events(3000, seed=31)
    a = w.start_worker("join-a")
    producer = produce_paced(w.stack.bootstrap, w.topics["events"], events, seconds=12)
    time.sleep(3)
    b = w.start_worker("join-b")  # a's partitions are revoked while its batches are in flight
    time.sleep(3)
    t0 = time.monotonic()
    b.stop(timeout=15)  # SIGTERM mid-stream: b settles its batch, commits and leaves the group
    stop_took = time.monotonic() - t0
    producer.join(60)
    r = redis.Redis.from_url(w.stack.redis_url)
    got = wait_for(r, w.prefix, starts, expected, timeout=120)
    r.close()
    assert a.alive
    assert stop_took < 10, f"SIGTERM took {stop_took:.1f}s"
    assert "partitions assigned: 2" in b.log_tail(400), "b must have owned partitions mid-stream"
    missing = {k: v - got.get(k, 0) for k, v in expected.items() if got.get(k, 0) < v}
    doubled = {k: got[k] - v for k, v in expected.items() if got.get(k, 0) > v}
    assert not missing, f"lost: {missing}"
    assert not doubled, f"double-counted: {doubled}"


def test_worker_processes_share_the_stream_and_stop_on_sigterm(world, tmp_path):
    """``babelwatch worker --processes 2``: two group members under one supervisor; SIGTERM to the
    supervisor stops both within seconds; counts exact."""
    w = world(triton_model="cheap", window_s=60, batch_size=50, spike_min_count=10**9)
    events, expected, starts = make_events(1500, seed=32)
    log_path = tmp_path / "supervisor.log"
    with open(log_path, "wb") as logf:
        sup = subprocess.Popen([sys.executable, "-m", "babelwatch", "worker", "--processes", "2"],
                               env={**os.environ, **w.env, "PYTHONUNBUFFERED": "1"}, cwd=REPO,
                               stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    children: list[int] = []
    try:
        # both members joined: the last rebalance gives each its share (2 of 4 partitions)
        wait_until(lambda: log_path.read_bytes().count(b"partitions assigned: 2") >= 2, 120, interval=0.3,
                   what="two worker processes with two partitions each")
        children += [int(p) for p in subprocess.run(["pgrep", "-P", str(sup.pid)], capture_output=True,
                                                    text=True).stdout.split()]
        assert len(children) == 2
        producer = produce_paced(w.stack.bootstrap, w.topics["events"], events, seconds=5)
        producer.join(60)
        r = redis.Redis.from_url(w.stack.redis_url)
        got = wait_for(r, w.prefix, starts, expected, timeout=120)
        r.close()
        t0 = time.monotonic()
        sup.send_signal(signal.SIGTERM)
        sup.wait(30)
        took = time.monotonic() - t0
        assert sup.returncode == 0
        assert took < 15, f"SIGTERM took {took:.1f}s"
        assert not [c for c in children if Path(f"/proc/{c}").exists()], "a worker process outlived its supervisor"
        assert got == expected
    finally:
        if sup.poll() is None:  # find the children even when the wait above timed out
            children += [int(p) for p in subprocess.run(["pgrep", "-P", str(sup.pid)], capture_output=True,
                                                        text=True).stdout.split() if int(p) not in children]
            os.killpg(sup.pid, signal.SIGKILL)
            sup.wait(5)
        for pid in children:  # each in its own session: not reached by the group kill above
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
