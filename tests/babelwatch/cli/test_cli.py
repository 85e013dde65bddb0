"""The commands a user types, run as subprocesses against real servers."""
from __future__ import annotations

import bw_paths
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

REPO = bw_paths.REPO
from fusion_model.corpora import SAMPLE_EVENTS as SAMPLE


def run_cli(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "babelwatch", *args],
        env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )


def test_produce_then_tail_roundtrip(stack):
    topic = f"cli-{os.getpid()}-roundtrip"
    stack.broker.create_topics({topic: 2})
    env = {"BABELWATCH_BROKER_URL": f"kafka://{stack.bootstrap}"}
    produced = run_cli(["produce", str(SAMPLE), "--topic", topic], env, 60)
    assert produced.returncode == 0, produced.stderr
    tailed = run_cli(["tail", topic, "--timeout", "4"], env, 60)
    assert tailed.returncode == 0, tailed.stderr
    lines = tailed.stdout.splitlines()
    assert len(lines) == len([ln for ln in SAMPLE.read_text().splitlines() if ln.strip()])
    # valid objects were stamped with an event time; invalid lines went out untouched
    objs = [orjson.loads(ln) for ln in lines if ln.startswith("{") and ln.endswith("}")]
    assert objs and all("ts" in o for o in objs if "topic" in o)
    assert any(ln.startswith('{"id": "bad-1"') for ln in lines)


def test_demo_command_scores_everything_and_alerts(tmp_path):
    """`babelwatch demo` starts its own stack and worker, replays the sample and sees the burst."""
    env = {"BABELWATCH_RUN_DIR": str(tmp_path), "BABELWATCH_REDIS_URL": "redis://127.0.0.1:6379/0"}
    done = run_cli(["demo", "--rate", "40", "--window", "1"], env, 300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "scored 328 of 328 valid events" in out
    assert "8 dead letters" in out
    assert "volume_spike" in out and "TSLA" in out
    # alerts come from the alerts topic as CloudEvents; at least the burst's alert fired
    fired = re.search(r"(\d+)\s+alert\(s\)\s+fired", out)
    assert fired and int(fired.group(1)) >= 1, out[-3000:]
    assert "/v1/alerts/stream" in out  # the notifier and its API ran alongside
    # reads need a token: the demo made one in a 0600 file and printed its path, never the token
    (tokens,) = tmp_path.rglob("api-tokens")
    assert tokens.stat().st_mode & 0o077 == 0
    name, scope, token = tokens.read_text().split()
    assert scope == "write" and len(token) >= 32 and token not in out and str(tokens) in out
    # everything the demo started is gone again
    assert "localstack: stopped" in out
