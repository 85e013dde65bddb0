"""``babelwatch score``: in-process and through a real Triton give the same answers; bad lines get
error lines, never a crash."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LINES = [
    {"id": "a", "source": "news", "topic": "TSLA", "text": "Tesla shares collapse after a disastrous recall", "ts": 1},
    {"id": "b", "source": "social", "topic": "BTC", "text": "比特币暴涨，创下历史新高！", "ts": 2},
    {"id": "c", "source": "news", "topic": "AAPL", "text": "Apple beats estimates, shares soar", "lang": "en", "ts": 3},
]


def run_score(extra: list[str], payload: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "babelwatch", "--log-level", "warning", "score", *extra],
                          input=payload, capture_output=True, cwd=REPO, timeout=180, env={**os.environ})


def test_score_in_process_and_via_triton_agree(stack):
    payload = b"\n".join(orjson.dumps(x) for x in LINES) + b"\n{not json\n" + orjson.dumps({"id": "d"}) + b"\n"
    local = run_score([], payload)
    served = run_score(["--triton", stack.triton_grpc_url], payload)
    assert local.returncode == 3 and served.returncode == 3, local.stderr[-2000:]  # 3: some lines invalid
    rows_l = [orjson.loads(x) for x in local.stdout.splitlines()]
    rows_s = [orjson.loads(x) for x in served.stdout.splitlines()]
    assert [r.get("id") for r in rows_l] == ["a", "b", "c", None, "d"]
    assert rows_l[3]["error"] == "not_json" and rows_l[4]["error"] == "invalid_event"
    assert [r["lang"] for r in rows_l[:3]] == ["en", "zh", "en"]
    assert [r["label"] for r in rows_l[:3]] == ["negative", "positive", "positive"]
    for a, b in zip(rows_l[:3], rows_s[:3]):
        assert a["label"] == b["label"]
        for k in a["probabilities"]:
            assert abs(a["probabilities"][k] - b["probabilities"][k]) < 1e-4
