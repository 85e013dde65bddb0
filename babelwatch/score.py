"""``babelwatch score``: JSON-lines events on stdin -> one JSON line per event on stdout.

Same validation and language identification as the stream; the model runs in-process
(onnxruntime over the built artifact) or on a Triton server (``--triton host:port``). Every line
gets exactly one answer, in input order: a bad line gets an error line with its reason and never
stops the run. An image the model refuses or cannot decode costs its line the image, not the line
(scored on its text, ``"error": "image: <why>"``). Should a whole scoring call fail, the batch is
scored again row by row, so only the rows that fail on their own get ``"error": "scoring_failed"``.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import IO, Sequence

import orjson

from fusion_model.bucketing import run_grouped
from fusion_model.preprocess import ImageLimits
from contracts.schema import DeadLetter, Event, LABELS, Limits
from contracts.settings import Settings
from workers.inference import ScoreInput, ScoreOutput, TritonScorer, decode_outputs
from workers.language import LinguaIdentifier
from workers.validate import EventValidator

log = logging.getLogger("babelwatch.score")


class InProcessScorer:
    """The fusion artifact run by onnxruntime in this process (no server), with the served model's
    per-row isolation: a bad image or text fails only its row (reason in the row's ``error``, the
    row scored on what is left). Anything else raises for the whole call; ``score_isolated`` then
    scores the batch row by row to find the rows that fail on their own."""

    def __init__(self, artifact: Path, threads: int | None = None, limits=None) -> None:
        from fusion_model.export import ort_session
        from fusion_model.preprocess import Preprocessor

        self.model_id = f"fusion:{artifact.resolve().name}"
        self.pre = Preprocessor.from_dir(artifact, limits)  # limits: ImageLimits (None: the defaults)
        # None: all cores (the CLI's default); the speed benchmark pins 1 to match a Triton instance
        self.session = ort_session(artifact / "model.onnx", threads=threads or os.cpu_count() or 1)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def ready(self) -> bool:
        return True  # in this process: nothing to wait for

    async def score(self, batch: Sequence[ScoreInput]) -> list[ScoreOutput]:
        import numpy as np

        if not batch:
            return []
        prepared = self.pre([x.text for x in batch], [x.image for x in batch])
        probs = run_grouped(lambda f: self.session.run(["probs"], f)[0], prepared.feeds)  # as the server does
        if probs.shape != (len(batch), len(LABELS)):
            raise RuntimeError(f"model returned probs of shape {probs.shape} for {len(batch)} rows")
        errors = [e.encode("utf-8", "replace") if e else b"" for e in prepared.row_errors]
        return decode_outputs(probs, prepared.modalities, np.array(errors, dtype=np.object_))


async def score_isolated(scorer, batch: Sequence[ScoreInput]) -> list[ScoreOutput | Exception]:
    """``scorer.score(batch)``; when that call fails as a whole, each row is scored alone, so only
    the rows that fail on their own come back as their exception (in their place)."""
    try:
        results = await scorer.score(batch)
        if len(results) != len(batch):
            raise RuntimeError(f"{len(results)} results for {len(batch)} rows")
        return list(results)
    except Exception as exc:  # noqa: BLE001 -- find the culprit rows instead
        if len(batch) == 1:
            return [exc]
        log.warning("scoring %d rows failed (%s: %s); scoring them one by one", len(batch), type(exc).__name__, exc)
    out: list[ScoreOutput | Exception] = []
    down: Exception | None = None
    for x in batch:
        if down is not None:  # the server is gone, not this row: do not wait on it row after row
            out.append(down)
            continue
        try:
            out.extend((await scorer.score([x]))[:1] or [RuntimeError("no result")])
        except Exception as exc:  # noqa: BLE001
            out.append(exc)
            if _unavailable(exc):
                down = exc
    return out


def _unavailable(exc: BaseException | None) -> bool:
    """A Triton server that cannot be reached (gRPC UNAVAILABLE), as opposed to a row it refused;
    looks at the exception, its ``status()`` and what it was raised from."""
    seen = 0
    while exc is not None and seen < 5:
        status = getattr(exc, "status", None)
        try:
            status = status() if callable(status) else status
        except Exception:  # noqa: BLE001
            status = None
        if "UNAVAILABLE" in f"{status or ''} {exc}".upper():
            return True
        exc, seen = exc.__cause__, seen + 1
    return False


async def _run(settings: Settings, inp: IO[bytes], out: IO[bytes], triton: str | None, batch_size: int,
               scorer=None) -> int:
    validator = EventValidator(Limits(max_text_chars=settings.max_text_chars,
                                      max_image_bytes=settings.max_image_bytes), settings.max_event_bytes,
                               settings.max_future_s, ImageLimits.from_settings(settings))
    langid = LinguaIdentifier(settings.languages)
    if scorer is not None:  # given (tests): started and stopped by the caller
        triton = None
    elif triton:
        scorer = TritonScorer(triton, settings.triton_model, timeout_s=settings.triton_timeout_s, max_retries=3)
        await scorer.start()
    else:
        scorer = InProcessScorer(settings.triton_repo / "fusion" / "1" / "artifact",
                                 limits=ImageLimits.from_settings(settings))
    failures = 0
    pending: list[tuple[int, Event]] = []

    def write(obj: dict) -> None:
        out.write(orjson.dumps(obj) + b"\n")

    async def flush() -> None:
        nonlocal failures
        if not pending:
            return
        events = [e for _, e in pending]
        langs = _languages(langid, events)
        inputs: list[ScoreInput | Exception] = []
        for e, lang in zip(events, langs):
            try:
                inputs.append(ScoreInput(e.text, e.image_bytes(), lang))
            except Exception as exc:  # noqa: BLE001 -- this line only
                inputs.append(exc)
        ok = [x for x in inputs if isinstance(x, ScoreInput)]
        scored = iter(await score_isolated(scorer, ok) if ok else [])
        results = [next(scored) if isinstance(x, ScoreInput) else x for x in inputs]
        for (line_no, e), lang, r in zip(pending, langs, results):
            if isinstance(r, Exception):
                failures += 1
                write({"line": line_no, "id": e.id, "lang": lang, "error": "scoring_failed",
                       "details": [{"msg": f"{type(r).__name__}: {r}"[:2000]}]})
                continue
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
            try:
                checked = validator.validate(raw.rstrip(b"\r\n"))
            except Exception as exc:  # noqa: BLE001 -- a validator bug answers this line, not the run
                failures += 1
                await flush()
                write({"line": line_no, "id": None, "error": "processing_failed",
                       "details": [{"msg": f"{type(exc).__name__}: {exc}"[:2000]}]})
                continue
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


def _languages(langid, events: Sequence[Event]) -> list[str]:
    """Each event's language: its own, else detected; ``und`` where detection fails."""
    missing = [i for i, e in enumerate(events) if e.lang is None]
    try:
        detected = dict(zip(missing, langid.detect_batch([events[i].text for i in missing])))
    except Exception:  # noqa: BLE001 -- one odd text must not cost the batch its answers
        detected = {}
        for i in missing:
            try:
                detected[i] = langid.detect_batch([events[i].text])[0]
            except Exception:  # noqa: BLE001
                detected[i] = "und"
    return [e.lang or detected.get(i, "und") for i, e in enumerate(events)]


def score(settings: Settings, triton: str | None = None, batch_size: int = 32,
          inp: IO[bytes] | None = None, out: IO[bytes] | None = None) -> int:
    """Exit code 0 when every line scored, 3 when some lines were invalid (all lines still answered)."""
    return asyncio.run(_run(settings, inp or sys.stdin.buffer, out or sys.stdout.buffer, triton, batch_size))
