"""One micro-batch through the whole flow: raw -> event -> language -> score -> window -> detect.

Kafka-free: the agent hands over raw records and sends what comes back. Per batch: at most one
round of image fetches, one language-ID call, one Triton call, one Redis script for the windows,
one for the alert lifecycle. Failure isolation and guarantees: docs/design.md."""
from __future__ import annotations

import logging
import time
from time import perf_counter
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field, replace
from typing import Sequence

from contracts.schema import ALL_LANGS, DeadLetter, Event, Scored, UNDETERMINED
from workers.alerting.model import AlertInstance
from workers.alerts import STAGE_OPEN, AlertEvaluator, WindowVerdict
from workers.detectors.base import Detector
from workers.images import ImageFetcher
from workers.scoring import ScoreInput, ScoreOutput, Scorer, ScoringFailed
from workers.stories import StoryItem
from workers.story_stage import StoryStage, series_stories
from workers.isolation import bisect
from workers.language import LanguageIdentifier
from workers.lifetimes import TopicLifetimes
from workers.retry import DependencyUnavailable, is_transient
from workers.validate import EventValidator, Origin
from workers.windows import ClosedWindow, WindowState, WindowStore


log = logging.getLogger("babelwatch.pipeline")


@dataclass(frozen=True)
class RawRecord:
    value: bytes
    origin: Origin = Origin()


@dataclass
class BatchResult:
    scored: list[Scored] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    alerts: list[AlertInstance] = field(default_factory=list)  # lifecycle notifications: firing/resolved
    windows: list[WindowState] = field(default_factory=list)
    closed: list[ClosedWindow] = field(default_factory=list)
    late: list[Scored] = field(default_factory=list)  # scored, but older than the watermark allows
    outbox: int = 0  # closed windows waiting to be sent to the detection stage
    # seconds per stage of the batch (validate, images, language, score, windows, stories, detect; the
    # stream adds produce): one perf_counter per stage, never per event
    timings: dict[str, float] = field(default_factory=dict)

    def merge(self, other: "BatchResult") -> None:
        for name in ("scored", "dead", "alerts", "windows", "closed", "late"):
            getattr(self, name).extend(getattr(other, name))
        self.outbox = max(self.outbox, other.outbox)
        for stage, took in other.timings.items():
            self.timings[stage] = self.timings.get(stage, 0.0) + took


class BatchProcessor:
    def __init__(
        self,
        validator: EventValidator,
        langid: LanguageIdentifier,
        scorer: Scorer,
        windows: WindowStore,
        detectors: Sequence[Detector],
        alerts: AlertEvaluator,
        max_series: int = 100_000,
        images: ImageFetcher | None = None,
        lifetimes: TopicLifetimes | None = None,
        stories: StoryStage | None = None,
    ) -> None:
        if validator.limits.fetch_image_urls and images is None:
            raise ValueError("the validator accepts events with only an image_url, but no ImageFetcher fetches them")
        self.validator = validator
        self.images = images  # None: image_url is kept, never fetched
        self.lifetimes = lifetimes  # None: ledger keyed by topic:partition alone (no lifetime check)
        self.langid = langid
        self.scorer = scorer
        self.windows = windows
        self.detectors = list(detectors)
        self.alerts = alerts
        self.stories = stories  # None: no story stage (disabled); it also skips batches without embeddings
        # newest window start seen per (topic, lang): a straggler for an older, still open window
        # must not judge (and so resolve) an alert about the newer one
        self._newest: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.max_series = max_series

    async def process_isolated(self, records: Sequence[RawRecord]) -> BatchResult:
        """:meth:`process`, except that records that make it fail are dead-lettered alone
        (``scoring_failed`` when the model refused them, ``processing_failed`` otherwise) and the
        rest of the batch goes on. If the scorer is not ready, nothing is blamed on the records:
        DependencyUnavailable makes the caller wait and retry the whole batch."""
        parts, failures = await bisect(records, self.process)
        if len(parts) == 1 and not failures:
            return parts[0]
        if failures and not await self.scorer.ready():
            raise DependencyUnavailable(f"{len(failures)} record(s) failed while the model is not ready: "
                                        f"{failures[0][1]}")
        result = BatchResult()
        for part in parts:
            result.merge(part)
        for rec, exc in failures:
            reason = "scoring_failed" if isinstance(exc, ScoringFailed) else "processing_failed"
            checked = self.validator.validate(rec.value, rec.origin)
            event_id = checked.id if isinstance(checked, Event) else None
            log.error("dead-lettered %s (%s, %s): %s: %s", event_id or "a record", reason, rec.origin,
                      type(exc).__name__, exc, exc_info=reason == "processing_failed")
            result.dead.append(self.validator.dead(rec.value, rec.origin, reason,
                                                   [{"type": type(exc).__name__, "msg": str(exc)[:1000]}], event_id))
        return result

    async def process(self, records: Sequence[RawRecord]) -> BatchResult:
        result = BatchResult()
        timings = result.timings
        t0 = perf_counter()
        events: list[tuple[Event, RawRecord]] = []
        validate = self.validator.validate
        for rec in records:
            checked = validate(rec.value, rec.origin)
            if isinstance(checked, Event):
                events.append((checked, rec))
            else:
                result.dead.append(checked)
        timings["validate"] = perf_counter() - t0
        if not events:
            return result
        t0 = perf_counter()
        images, image_errors = await self._images(events, result)
        timings["images"] = perf_counter() - t0
        if not events:
            return result

        t0 = perf_counter()
        langs = self._languages([e for e, _ in events])
        timings["language"] = perf_counter() - t0
        t0 = perf_counter()
        inputs = [ScoreInput(e.text, image, lang) for (e, _), image, lang in zip(events, images, langs)]
        outputs = await self._score(inputs)
        outputs = self._without_bad_fetched_images(events, inputs, outputs, image_errors)
        now = time.time()
        model_id = self.scorer.model_id
        origins: list[Origin] = []
        embedded: list[tuple[int, Event, object]] = []  # (scored index, event, embedding) for the story stage
        for (e, rec), lang, out, image_error in zip(events, langs, outputs, image_errors):
            if out.error is not None:  # e.g. an undecodable image: this event only, not the batch
                if out.error.startswith("text:"):  # the model could not read the text (row error)
                    reason, loc = "scoring_failed", "text"
                else:
                    reason, loc = "invalid_image", "image_b64" if e.image_b64 is not None else "image_url"
                result.dead.append(self.validator.dead(rec.value, rec.origin, reason,
                                                       [{"loc": loc, "msg": out.error}], e.id))
                continue
            origins.append(rec.origin)
            if out.embedding is not None:
                embedded.append((len(result.scored), e, out.embedding))
            p = out.probabilities
            # every value is ours and already typed: no validation (~15 us), not even model_construct's
            # per-field loop (~4 us; scored_model builds the same object in ~1 us)
            result.scored.append(scored_model({
                "id": e.id,
                "topic": e.topic,
                "source": e.source,
                "lang": lang,
                "lang_detected": e.lang is None,
                "label": out.label,
                "probabilities": p,
                "sentiment": p["positive"] - p["negative"],
                "modalities": out.modalities,
                "image_error": image_error,
                "model": model_id,
                "ts": e.ts,
                "scored_at": now,
                "story": None,
            }))

        timings["score"] = perf_counter() - t0
        t0 = perf_counter()
        positions, known = await self._positions(origins)
        applied = await self.windows.apply_batch(result.scored, positions)
        timings["windows"] = perf_counter() - t0
        views: dict[tuple[str, str], dict] = {}
        if self.stories is not None and embedded:
            t0 = perf_counter()
            views = await self._assign_stories(result.scored, embedded, positions)
            timings["stories"] = perf_counter() - t0
        if self.lifetimes is not None:
            self.lifetimes.applied(known)
        t0 = perf_counter()
        result.windows = applied.open
        result.closed = applied.closed
        result.late = [result.scored[i] for i in applied.late]
        result.outbox = applied.outbox
        verdicts = []
        samples: dict[tuple[str, str], list[str]] | None = None
        behind: dict[tuple[str, str], tuple[dict, ...]] | None = None  # the stories behind each series
        for w in self._current(result.windows):
            for det in self.detectors:
                verdict = det.check(w)
                if verdict is None:
                    continue
                if verdict.anomalous and samples is None:
                    samples = defaultdict(list)
                    for s in result.scored:
                        for key in ((s.topic, s.lang), (s.topic, ALL_LANGS)):
                            if len(samples[key]) < 3:
                                samples[key].append(s.id)
                    behind = series_stories(views, ((s.topic, s.lang, s.story) for s in result.scored
                                                    if s.story is not None), ALL_LANGS) if views else {}
                verdicts.append(WindowVerdict(
                    w.topic, w.lang, w.size_s, w.start, verdict, STAGE_OPEN,
                    tuple(samples.get((w.topic, w.lang), ())) if verdict.anomalous and samples else (),
                    behind.get((w.topic, w.lang), ()) if verdict.anomalous and behind else (),
                ))
        if views:
            verdicts.extend(self.stories.bursts(views))
        result.alerts = await self.alerts.evaluate(verdicts)
        timings["detect"] = perf_counter() - t0
        return result

    async def _positions(self, origins: list[Origin]):
        """Each event's idempotency key for the windows and the stories (its place in Kafka, by the
        topic's lifetime when known), and the offsets to mark applied once both stages are done."""
        if self.lifetimes is None:
            return [_position(o) for o in origins], []
        known = [(o.topic, o.partition, o.offset) for o in origins if o.topic is not None
                 and o.partition is not None and o.offset is not None]
        if self.lifetimes.went_back(known):  # a redelivery, or a topic that started over: ask the broker
            await self.lifetimes.refresh({t for t, _, _ in known})
        positions = [None if o.topic is None or o.partition is None or o.offset is None
                     else (self.lifetimes.source(o.topic, o.partition), o.offset) for o in origins]
        return positions, known

    async def _assign_stories(self, scored: list[Scored], embedded: list[tuple[int, Event, object]],
                              positions: list) -> dict[tuple[str, str], dict]:
        """One ``assign`` for the batch's embedded events; sets each one's ``story``; returns the
        touched stories' snapshots (for the alerts and story_burst)."""
        items = []
        for i, e, emb in embedded:
            s = scored[i]
            items.append(StoryItem(s.topic, positions[i], s.id, s.lang, e.text, s.sentiment, emb, s.ts, e.source))
        ids = await self.stories.assign(items)
        touched: dict[str, set[str]] = defaultdict(set)
        for (i, _e, _emb), sid in zip(embedded, ids):
            if sid is not None:
                scored[i].__dict__["story"] = sid  # built by scored_model: a plain dict, no validation
                touched[scored[i].topic].add(sid)
        return await self.stories.snapshots(touched)

    async def _score(self, inputs: list[ScoreInput]) -> list[ScoreOutput]:
        try:
            outputs = await self.scorer.score(inputs)
        except ScoringFailed:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise
            raise ScoringFailed(f"{type(exc).__name__}: {exc}") from exc
        if len(outputs) != len(inputs):
            raise ScoringFailed(f"the model answered {len(outputs)} rows for {len(inputs)} inputs")
        return outputs

    async def _images(
        self, events: list[tuple[Event, RawRecord]], result: BatchResult
    ) -> tuple[list[bytes | None], list[str | None]]:
        """Per event, its image bytes (inline, or fetched from image_url in one concurrent round) and
        why a URL's image is missing. Events left with nothing to score are dead-lettered and removed
        from ``events``."""
        images = [e.image_bytes() for e, _ in events]
        errors: list[str | None] = [None] * len(events)
        wanted = [i for i, (e, _) in enumerate(events) if e.image_url and e.image_b64 is None]
        if self.images is None or not wanted:
            return images, errors
        fetched = await self.images.fetch_all(events[i][0].image_url for i in wanted)
        for i in wanted:
            got = fetched[events[i][0].image_url]
            images[i], errors[i] = got.data, got.error
        kept: list[tuple[Event, RawRecord]] = []
        kept_images: list[bytes | None] = []
        kept_errors: list[str | None] = []
        for (e, rec), image, error in zip(events, images, errors):
            if error is not None and not e.text.strip():  # nothing left to score
                result.dead.append(self.validator.dead(rec.value, rec.origin, "image_fetch_failed",
                                                       [{"loc": "image_url", "msg": error}], e.id))
                continue
            kept.append((e, rec))
            kept_images.append(image)
            kept_errors.append(error)
        events[:] = kept
        return kept_images, kept_errors

    @staticmethod
    def _without_bad_fetched_images(
        events: list[tuple[Event, RawRecord]], inputs: list[ScoreInput], outputs: list[ScoreOutput],
        image_errors: list[str | None],
    ) -> list[ScoreOutput]:
        """A fetched image the model cannot decode costs its event the image, not the event. The
        model already scored such a row on its text alone (it drops an undecodable image per row and
        says so in the error), so the event keeps that score, with the reason as its image_error."""
        outputs = list(outputs)
        for i, ((e, _), x, out) in enumerate(zip(events, inputs, outputs)):
            if out.error is not None and e.image_b64 is None and x.image is not None and e.text.strip():
                image_errors[i] = f"invalid_image: {out.error}"
                outputs[i] = replace(out, error=None)
        return outputs

    def _current(self, windows: Sequence[WindowState]) -> list[WindowState]:
        """Per series, the newest window of the batch, unless a newer one was judged before."""
        newest: dict[tuple[str, str], WindowState] = {}
        for w in windows:
            key = (w.topic, w.lang)
            if key not in newest or w.start > newest[key].start:
                newest[key] = w
        out = []
        for key, w in newest.items():
            seen = self._newest.get(key)
            if seen is not None and w.start < seen:
                continue
            self._newest[key] = w.start
            self._newest.move_to_end(key)
            out.append(w)
        while len(self._newest) > self.max_series:
            self._newest.popitem(last=False)
        return out

    def _languages(self, events: list[Event]) -> list[str]:
        return event_languages(self.langid, events)


def event_languages(langid: LanguageIdentifier, events: Sequence[Event]) -> list[str]:
    """The language step, also run by ``babelwatch score``: given tags are trusted (primary subtag
    kept); missing ones are detected in one call."""
    missing = [i for i, e in enumerate(events) if e.lang is None]
    detected = langid.detect_batch([events[i].text for i in missing]) if missing else []
    langs = [e.lang.split("-", 1)[0] if e.lang else UNDETERMINED for e in events]
    for i, lang in zip(missing, detected):
        langs[i] = lang
    return langs


_SCORED_FIELDS = frozenset(Scored.model_fields)


def scored_model(values: dict) -> Scored:
    """``Scored.model_construct(**values)`` for a dict holding every field, already typed: the
    object pydantic's own construct path builds (tests/workers/test_pipeline_objects.py pins it)."""
    m = Scored.__new__(Scored)
    object.__setattr__(m, "__dict__", values)
    object.__setattr__(m, "__pydantic_fields_set__", set(_SCORED_FIELDS))
    object.__setattr__(m, "__pydantic_extra__", None)
    object.__setattr__(m, "__pydantic_private__", None)
    return m


def _position(origin: Origin) -> tuple[str, int] | None:
    """The event's place in Kafka, the idempotency key of its window update."""
    if origin.topic is None or origin.partition is None or origin.offset is None:
        return None
    return (f"{origin.topic}:{origin.partition}", origin.offset)
