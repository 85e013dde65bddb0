"""``babelwatch score --stories``: the lines grouped into cross-lingual stories in order, in-process
(no Redis), a ``story`` on every output line; lines without usable text get none."""
from __future__ import annotations

import os
import subprocess
import sys

import bw_paths
import orjson

from babelwatch.bench.stories import bcubed, load_set

REPO = bw_paths.REPO


def run_score(extra: list[str], payload: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "babelwatch", "--log-level", "warning", "score", *extra],
                          input=payload, capture_output=True, cwd=REPO, timeout=300, env={**os.environ})


def test_score_stories_groups_the_labelled_set_and_marks_every_line():
    rows = load_set()[:90]
    events = [{"id": r["id"], "source": r["source"], "topic": r["topic"], "lang": r["lang"], "text": r["text"],
               "ts": r["ts"], "meta": {"url": r["link"]}} for r in rows]
    extra = [b"{not json", orjson.dumps({"id": "emoji", "source": "social", "topic": "TSLA", "text": "🚀🚀🔥",
                                         "ts": rows[-1]["ts"] + 1})]
    payload = b"\n".join([*(orjson.dumps(e) for e in events), *extra]) + b"\n"
    proc = run_score(["--stories"], payload)
    assert proc.returncode == 3, proc.stderr.decode()[-2000:]  # the bad line makes it 3, all lines answered
    out = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert len(out) == len(events) + 2 and all("story" in o for o in out)
    assert out[-2]["story"] is None and out[-1]["story"] is None  # not json; emoji only
    got = [o["story"] for o in out[:len(events)]]
    assert None not in got
    _, _, f1 = bcubed([r["story"] for r in rows], got)
    assert f1 >= 0.85
    # without the flag: no story field, the rest unchanged
    plain = [orjson.loads(line) for line in run_score([], payload).stdout.splitlines()]
    assert all("story" not in o for o in plain)
    assert [o.get("label") for o in plain] == [o.get("label") for o in out]
