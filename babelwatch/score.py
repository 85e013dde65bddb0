"""``babelwatch score``: JSON-lines events on stdin -> one JSON line per event on stdout.

The stream's own validation and language steps (``workers.pipeline``), then a scorer from
``workers.scoring``: in-process (onnxruntime over the built artifact) or a Triton server
(``--triton host:port``). Every line gets exactly one answer, in input order: a bad line gets an
error line with its reason and never stops the run. An image the model cannot decode costs its
line the image, not the line (scored on its text, ``"error": "image: <why>"``). Should a whole
scoring call fail, the batch is scored again row by row, so only the rows that fail on their own
get ``"error": "scoring_failed"``.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from itertools import islice
from typing import IO, Iterable, Iterator, Sequence

import orjson

from contracts.schema import DeadLetter, Event, LABELS, Limits
from contracts.settings import Settings
from fusion_model.preprocess import ImageLimits
from workers.isolation import bisect
from workers.language import LinguaIdentifier
from workers.pipeline import event_languages
from workers.scoring import ScoreInput, ScoreOutput
from workers.validate import EventValidator

log = logging.getLogger("babelwatch.score")

Line = tuple[int, bytes]  # (line number, payload)


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


def _details(exc: BaseException) -> list[dict]:
    return [{"msg": f"{type(exc).__name__}: {exc}"[:2000]}]


class _Answers:
    """Turns batches of input lines into answer rows; counts the lines that got no score."""

    def __init__(self, validator: EventValidator, langid, scorer, stories=None) -> None:
        self.validator = validator
        self.langid = langid
        self.scorer = scorer
        self.stories = stories  # a workers.stories.StoryAssigner, or None (no "story" field)
        self.failures = 0

    async def batch(self, lines: Sequence[Line]) -> list[dict]:
        # a line whose validation or language step raises fails alone, as in the stream
        parts, failed = await bisect(lines, self._prepare)
        by_line = {n: item for part in parts for n, item in part}
        by_line.update((n, exc) for (n, _), exc in failed)
        items = [(n, by_line[n]) for n, _ in lines]
        inputs = [item[1] for _, item in items if isinstance(item, tuple)]
        scored = list(await score_isolated(self.scorer, inputs) if inputs else [])
        rows = [self._row(n, item, it) for (n, item), it in zip(items, _spread(items, scored))]
        if self.stories is not None:
            await self._add_stories(rows, items, scored)
        return rows

    async def _add_stories(self, rows: list[dict], items, scored: list) -> None:
        """``story`` on every row, in input order as the stream assigns them (None: no story)."""
        from workers.stories import StoryItem

        picked = [(row, item[0], r) for row, (_, item), r in zip(rows, items, _spread(items, scored))
                  if isinstance(item, tuple) and isinstance(r, ScoreOutput)]
        ids = await self.stories.assign([
            StoryItem(event.topic, None, event.id, row["lang"], event.text,
                      r.probabilities["positive"] - r.probabilities["negative"], r.embedding, event.ts,
                      str(event.meta.get("url") or event.meta.get("link") or event.source))
            for row, event, r in picked])
        for row in rows:
            row["story"] = None
        for (row, _, _), sid in zip(picked, ids):
            row["story"] = sid

    async def _prepare(self, lines: Sequence[Line]) -> list[tuple[int, tuple[Event, ScoreInput] | DeadLetter]]:
        checked = [self.validator.validate(raw) for _, raw in lines]
        events = [c for c in checked if isinstance(c, Event)]
        langs = iter(event_languages(self.langid, events))
        return [(n, (c, ScoreInput(c.text, c.image_bytes(), next(langs))) if isinstance(c, Event) else c)
                for (n, _), c in zip(lines, checked)]

    def _row(self, line_no: int, item, r: ScoreOutput | Exception | None) -> dict:
        if isinstance(item, Exception):  # the validator or the language step failed on this line
            self.failures += 1
            return {"line": line_no, "id": None, "error": "processing_failed", "details": _details(item)}
        if isinstance(item, DeadLetter):
            self.failures += 1
            return {"line": line_no, "id": item.event_id, "error": item.reason, "details": item.errors}
        event, x = item
        if isinstance(r, Exception):
            self.failures += 1
            return {"line": line_no, "id": event.id, "lang": x.lang, "error": "scoring_failed",
                    "details": _details(r)}
        row = {"line": line_no, "id": event.id, "lang": x.lang, "label": r.label,
               "probabilities": {k: round(r.probabilities[k], 6) for k in LABELS}, "modalities": r.modalities,
               "model": self.scorer.model_id}
        if r.error:
            row["error"] = r.error
        return row


def _spread(items, scored: list) -> Iterator:
    """The scores of the rows that were scored, None for the others, one per item in order."""
    it = iter(scored)
    return (next(it) if isinstance(item, tuple) else None for _, item in items)


def _lines(inp: IO[bytes]) -> Iterator[Line]:
    for line_no, raw in enumerate(inp, start=1):
        if raw.strip():
            yield line_no, raw.rstrip(b"\r\n")


def _batches(lines: Iterable[Line], size: int) -> Iterator[list[Line]]:
    it = iter(lines)
    while batch := list(islice(it, size)):
        yield batch


async def _run(settings: Settings, inp: IO[bytes], out: IO[bytes], triton: str | None, batch_size: int,
               scorer=None, stories: bool = False) -> int:
    validator = EventValidator(Limits(max_text_chars=settings.max_text_chars,
                                      max_image_bytes=settings.max_image_bytes), settings.max_event_bytes,
                               settings.max_future_s, ImageLimits.from_settings(settings))
    langid = LinguaIdentifier(settings.languages)
    if scorer is not None:  # given (tests): started and stopped by the caller
        triton = None
    elif triton:
        from workers.scoring.triton import TritonScorer

        scorer = TritonScorer(triton, settings.triton_model, timeout_s=settings.triton_timeout_s, max_retries=3)
        await scorer.start()
    else:
        from workers.scoring.inprocess import InProcessScorer

        scorer = InProcessScorer(settings.triton_repo / "fusion" / "1" / "artifact",
                                 limits=ImageLimits.from_settings(settings))
    assigner = None
    if stories:  # in-process, no Redis: the same rules as the worker's store (workers/stories)
        from workers.stories import StoryRules
        from workers.stories.memory import InMemoryStories

        assigner = InMemoryStories(StoryRules.from_settings(settings))
    answers = _Answers(validator, langid, scorer, assigner)
    try:
        for batch in _batches(_lines(inp), batch_size):
            for row in await answers.batch(batch):
                out.write(orjson.dumps(row) + b"\n")
    finally:
        if triton:
            await scorer.stop()
        out.flush()
    return 0 if answers.failures == 0 else 3


def score(settings: Settings, triton: str | None = None, batch_size: int = 32,
          inp: IO[bytes] | None = None, out: IO[bytes] | None = None, stories: bool = False) -> int:
    """Exit code 0 when every line scored, 3 when some lines were invalid (all lines still answered).
    ``stories``: each line also gets ``story``, assigned over the lines in order (docs/design.md "Stories")."""
    return asyncio.run(_run(settings, inp or sys.stdin.buffer, out or sys.stdout.buffer, triton, batch_size,
                            stories=stories))
