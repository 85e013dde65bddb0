"""``babelwatch score``: JSON-lines events on stdin -> one JSON line per event on stdout.

Same validation and language identification as the stream; the model runs in-process
(onnxruntime over the built artifact) or on a Triton server (``--triton host:port``). A bad line
gets an error line with its reason and never stops the run.
"""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import IO, Sequence

import orjson

from babelwatch.model.bucketing import run_grouped
from babelwatch.schema import DeadLetter, Event, LABELS, Limits
from babelwatch.settings import Settings
from workers.inference import ScoreInput, ScoreOutput, TritonScorer, decode_outputs
from workers.language import LinguaIdentifier
from workers.validate import EventValidator


class InProcessScorer:
    """The fusion artifact run by onnxruntime in this process (no server)."""

    def __init__(self, artifact: Path, threads: int | None = None) -> None:
        from babelwatch.model.export import ort_session
        from babelwatch.model.preprocess import Preprocessor

        self.model_id = f"fusion:{artifact.resolve().name}"
        self.pre = Preprocessor.from_dir(artifact)
        # None: all cores (the CLI's default); the speed benchmark pins 1 to match a Triton instance
        self.session = ort_session(artifact / "model.onnx", threads=threads or os.cpu_count() or 1)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def score(self, batch: Sequence[ScoreInput]) -> list[ScoreOutput]:
        prepared = self.pre([x.text for x in batch], [x.image for x in batch])
        probs = run_grouped(lambda f: self.session.run(["probs"], f)[0], prepared.feeds)  # as the server does
        errors = [("image: " + e).encode() if e else b"" for e in prepared.image_errors]
        import numpy as np

        return decode_outputs(probs, prepared.modalities, np.array(errors, dtype=np.object_))


async def _run(settings: Settings, inp: IO[bytes], out: IO[bytes], triton: str | None, batch_size: int) -> int:
    validator = EventValidator(Limits(max_text_chars=settings.max_text_chars,
                                      max_image_bytes=settings.max_image_bytes), settings.max_event_bytes)
    langid = LinguaIdentifier(settings.languages)
    if triton:
        scorer = TritonScorer(triton, settings.triton_model, timeout_s=settings.triton_timeout_s, max_retries=3)
        await scorer.start()
    else:
        scorer = InProcessScorer(settings.triton_repo / "fusion" / "1" / "artifact")
    failures = 0
    pending: list[tuple[int, Event]] = []

    def write(obj: dict) -> None:
        out.write(orjson.dumps(obj) + b"\n")

    async def flush() -> None:
        if not pending:
            return
        events = [e for _, e in pending]
        missing = [i for i, e in enumerate(events) if e.lang is None]
        detected = dict(zip(missing, langid.detect_batch([events[i].text for i in missing])))
        langs = [e.lang or detected[i] for i, e in enumerate(events)]
        results = await scorer.score([ScoreInput(e.text, e.image_bytes(), lang) for e, lang in zip(events, langs)])
        for (line_no, e), lang, r in zip(pending, langs, results):
            row = {"line": line_no, "id": e.id, "lang": lang, "label": r.label,
                   "probabilities": {k: round(r.probabilities[k], 6) for k in LABELS}, "modalities": r.modalities,
                   "model": scorer.model_id}
            if r.error:
                row["error"] = r.error
            write(row)
        pending.clear()

    try:
        for line_no, raw in enumerate(inp, start=1):
            if not raw.strip():
                continue
            checked = validator.validate(raw.rstrip(b"\r\n"))
            if isinstance(checked, DeadLetter):
                failures += 1
                await flush()  # answers keep the input's order
                write({"line": line_no, "id": checked.event_id, "error": checked.reason, "details": checked.errors})
                continue
            pending.append((line_no, checked))
            if len(pending) >= batch_size:
                await flush()
        await flush()
    finally:
        if triton:
            await scorer.stop()
        out.flush()
    return 0 if failures == 0 else 3


def score(settings: Settings, triton: str | None = None, batch_size: int = 32,
          inp: IO[bytes] | None = None, out: IO[bytes] | None = None) -> int:
    """Exit code 0 when every line scored, 3 when some lines were invalid (all lines still answered)."""
    return asyncio.run(_run(settings, inp or sys.stdin.buffer, out or sys.stdout.buffer, triton, batch_size))
