"""``babelwatch score``: in-process and through a real Triton give the same answers; bad lines get
error lines, never a crash."""
from __future__ import annotations

import bw_paths
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.integration

REPO = bw_paths.REPO
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


def _lines_with_poison(n: int = 58, poison_at: int = 20) -> tuple[list[dict], bytes]:
    """``n`` valid events, some with images; line ``poison_at`` (0-based) carries the 1 x 10,000,000
    PNG (39 KB) that used to make ``babelwatch score`` answer none of its lines."""
    import base64

    from bw_images import png
    from bw_triton import sample_images

    imgs = sample_images(3)
    texts = ["Tesla shares collapse after a disastrous recall", "比特币暴涨，创下历史新高！",
             "Apple beats estimates, shares soar", "トヨタ、過去最高益を更新", "La empresa quebró"]
    events = []
    for i in range(n):
        e = {"id": f"e{i}", "source": "news", "topic": "TSLA", "text": texts[i % len(texts)], "ts": 1 + i}
        if i % 4 == 1:
            e["image_b64"] = base64.b64encode(imgs[i % 3]).decode()
        if i == poison_at:
            e["image_b64"] = base64.b64encode(png(1, 10_000_000)).decode()
        events.append(e)
    return events, b"\n".join(orjson.dumps(e) for e in events) + b"\n"


@pytest.mark.parametrize("where", ["in-process", "triton"])
def test_a_poison_image_costs_its_line_the_image_not_the_run(stack, where):
    events, payload = _lines_with_poison()
    proc = run_score([] if where == "in-process" else ["--triton", stack.triton_grpc_url], payload)
    assert proc.returncode == 3, proc.stderr[-2000:]  # 3: some line was refused (the poison)
    rows = [orjson.loads(x) for x in proc.stdout.splitlines()]
    assert len(rows) == 58 and [r["id"] for r in rows] == [e["id"] for e in events]
    poison = rows[20]
    # refused by the validator from the header, as in the stream (the model would drop it per row)
    assert poison["error"] == "invalid_image", poison
    assert "1x10000000" in poison["details"][0]["msg"] and poison["details"][0]["loc"] == "image_b64"
    assert all("error" not in r and r["label"] for i, r in enumerate(rows) if i != 20)
    assert [r["modalities"] for r in rows[1::4]] == [["text", "image"]] * 15  # the valid images still count


class _FlakyScorer:
    """A scorer whose whole call fails when its batch holds a poison text (as a server error would)."""

    model_id = "fake:1"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.calls: list[int] = []

    async def score(self, batch):
        from workers.scoring import ScoreOutput

        self.calls.append(len(batch))
        if any("POISON" in x.text for x in batch):
            raise self.exc
        return [ScoreOutput({"negative": 0.1, "neutral": 0.2, "positive": 0.7}, "positive", ["text"]) for _ in batch]


def _run_with(scorer, payload: bytes) -> tuple[int, list[dict]]:
    import asyncio
    import io

    from babelwatch.score import _run
    from contracts.settings import Settings

    out = io.BytesIO()
    rc = asyncio.run(_run(Settings(languages="en,de"), io.BytesIO(payload), out, None, 32, scorer=scorer))
    return rc, [orjson.loads(x) for x in out.getvalue().splitlines()]


def test_a_failing_scoring_call_is_retried_row_by_row_so_only_the_culprit_fails():
    events = [{"id": f"e{i}", "source": "news", "topic": "T", "lang": "en", "ts": 1 + i,
               "text": "POISON row" if i == 40 else f"good news number {i}"} for i in range(58)]
    payload = b"\n".join(orjson.dumps(e) for e in events) + b"\n"
    scorer = _FlakyScorer(MemoryError("the model ran out of memory"))
    rc, rows = _run_with(scorer, payload)
    assert rc == 3  # some line failed; every line answered
    assert [r["id"] for r in rows] == [e["id"] for e in events]
    assert rows[40]["error"] == "scoring_failed"
    assert rows[40]["details"] == [{"msg": "MemoryError: the model ran out of memory"}]
    assert all(r["label"] == "positive" and "error" not in r for i, r in enumerate(rows) if i != 40)
    assert scorer.calls == [32, 26] + [1] * 26  # the second batch (rows 32..57) alone went row by row


def test_an_unreachable_server_answers_every_line_without_waiting_on_each():
    class Unavailable(Exception):
        def status(self):
            return "StatusCode.UNAVAILABLE"

    class Down(_FlakyScorer):
        async def score(self, batch):
            self.calls.append(len(batch))
            raise self.exc

    events = [{"id": f"e{i}", "source": "news", "topic": "T", "lang": "en", "ts": 1 + i, "text": f"t{i}"}
              for i in range(40)]
    scorer = Down(Unavailable("failed to connect to all addresses"))
    rc, rows = _run_with(scorer, b"\n".join(orjson.dumps(e) for e in events))
    assert rc == 3 and len(rows) == 40 and all(r["error"] == "scoring_failed" for r in rows)
    assert scorer.calls == [32, 1, 8, 1]  # one try per batch, one row, then the rest marked at once


def test_answers_keep_the_input_order_around_bad_and_blank_lines():
    lines = [orjson.dumps({"id": "a", "source": "news", "topic": "T", "lang": "en-US", "ts": 1, "text": "good"}),
             b"", b"{not json",
             orjson.dumps({"id": "b", "source": "news", "topic": "T", "lang": "de", "ts": 2, "text": "gut"}),
             orjson.dumps({"id": "c", "source": "news", "ts": 3, "text": "no topic"}), b"   ",
             orjson.dumps({"id": "d", "source": "news", "topic": "T", "lang": "en", "ts": 4, "text": "fine"})]
    scorer = _FlakyScorer(RuntimeError("unused"))
    rc, rows = _run_with(scorer, b"\n".join(lines) + b"\n")
    assert rc == 3
    assert [(r["line"], r["id"], r.get("error")) for r in rows] == [
        (1, "a", None), (3, None, "not_json"), (4, "b", None), (5, "c", "invalid_event"), (7, "d", None)]
    assert [r["lang"] for r in rows if "label" in r] == ["en", "de", "en"]  # the stream's primary subtag
    assert scorer.calls == [3]  # the valid lines of a batch in one call, whatever lies between them


def test_a_line_that_breaks_the_language_step_fails_alone():
    """As in the stream (workers.isolation): the batch is split until the line that fails is alone."""
    import asyncio

    from babelwatch.score import _Answers
    from contracts.schema import Limits
    from workers.validate import EventValidator

    class Langid:
        def detect_batch(self, texts):
            if any("BREAKS" in t for t in texts):
                raise UnicodeError("the detector choked")
            return ["en"] * len(texts)

    lines = [(i + 1, orjson.dumps({"id": f"e{i}", "source": "news", "topic": "T", "ts": 1,
                                   "text": "BREAKS lingua" if i == 5 else f"text {i}"})) for i in range(8)]
    answers = _Answers(EventValidator(Limits()), Langid(), _FlakyScorer(RuntimeError("unused")))
    rows = asyncio.run(answers.batch(lines))
    assert [r["id"] for r in rows] == [f"e{i}" if i != 5 else None for i in range(8)]
    assert rows[5]["error"] == "processing_failed" and rows[5]["line"] == 6
    assert rows[5]["details"] == [{"msg": "UnicodeError: the detector choked"}]
    assert all(r["label"] == "positive" and r["lang"] == "en" for i, r in enumerate(rows) if i != 5)
    assert answers.failures == 1
