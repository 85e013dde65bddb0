"""Detector verdicts -> alert lifecycle -> notifications, and the history list the API reads.

Both stages report every verdict, anomalous or not (a calm verdict resolves a firing alert): the
pipeline's early alarm on the OPEN window (``stage=open``) and the detection stage on CLOSED windows
(``stage=closed``); ``stage`` is a label, so the two never share an alert. The lifecycle's commit
queues each notification in the alert outbox and the history list in one script;
``AlertHistory`` reads that list. Guarantees: docs/design.md."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from contracts.keys import RedisKeys
from contracts.schema import ALL_LANGS

from workers.alerting.lifecycle import AlertLifecycle, Observation
from workers.alerting.model import AlertInstance, clean_labels, fingerprint
from workers.alerting.observations import observations_for

log = logging.getLogger("babelwatch.alerts")

STAGE_OPEN = "open"
STAGE_CLOSED = "closed"

@dataclass(frozen=True)
class WindowVerdict:
    """One detector's verdict on one window of one (topic, language) series."""

    topic: str
    lang: str
    size_s: int
    start: float
    verdict: Any  # workers.detectors.base.Verdict
    stage: str = STAGE_OPEN
    samples: tuple[str, ...] = ()
    stories: tuple[dict, ...] = ()  # workers.alerting.story_notes.story_annotation: the stories behind it

    def observations(self) -> list[Observation]:
        return observations_for(self.topic, self.lang, self.size_s, float(self.start), self.verdict,
                                samples=self.samples, extra_labels={"stage": self.stage}, stories=self.stories)


@dataclass(frozen=True)
class StoryVerdict:
    """``story_burst``'s verdict on a topic's stories touched by one batch: one alert per topic
    (labels topic, language=all, detector, window = the rate's time constant, stage=open; the story
    ids only in the annotations, so the label set stays bounded)."""

    topic: str
    rate_tau_s: int
    start: float  # the bursting story's first event (or the batch's latest story event when calm)
    verdict: Any
    stories: tuple[dict, ...] = ()
    samples: tuple[str, ...] = ()  # the bursting story's representative event ids

    def observations(self) -> list[Observation]:
        return observations_for(self.topic, ALL_LANGS, self.rate_tau_s, float(self.start), self.verdict,
                                samples=self.samples, extra_labels={"stage": STAGE_OPEN},
                                stories=self.stories)


async def observe_in_order(lifecycle: AlertLifecycle, observations: Sequence[Observation],
                           now: float | None = None) -> list[AlertInstance]:
    """Like ``lifecycle.observe``, but an alert observed several times (several windows of one series
    in a batch) goes through one call per observation, so a short episode inside the batch still
    gives its firing notification (``observe`` folds repeats into at most one notification).
    One round trip in the common case (no repeats)."""
    chunks: list[list[Observation]] = [[]]
    seen: set[str] = set()
    for o in observations:
        fp = fingerprint(clean_labels(dict(o.labels)))
        if fp in seen:
            chunks.append([])
            seen = set()
        seen.add(fp)
        chunks[-1].append(o)
    out: list[AlertInstance] = []
    for chunk in chunks:
        if chunk:
            out.extend(await lifecycle.observe(chunk, now))
    return out


class AlertHistory:
    """Reads the recent notifications (firing and resolved), newest first. The lifecycle's commit
    writes them (``RedisAlertStateStore``, capped at its ``history_len``)."""

    def __init__(self, redis, prefix: str = "bw") -> None:
        self.redis = redis
        self.key = RedisKeys(prefix).alerts_history

    async def history(self, limit: int = 100) -> list[AlertInstance]:
        raw = await self.redis.lrange(self.key, 0, max(0, limit - 1))
        return [AlertInstance.model_validate_json(r) for r in raw]


class AlertEvaluator:
    """Verdicts -> notifications (already in the outbox and history when returned); ``on_sweep``
    logs those of the lifecycle's staleness sweep."""

    def __init__(self, lifecycle: AlertLifecycle) -> None:
        self.lifecycle = lifecycle

    async def evaluate(self, verdicts: Iterable[WindowVerdict], now: float | None = None) -> list[AlertInstance]:
        observations = [o for v in verdicts for o in v.observations()]
        if not observations:
            return []
        return await observe_in_order(self.lifecycle, observations, now)

    async def on_sweep(self, notes: list[AlertInstance]) -> None:
        for a in notes:
            log.info("alert %s (stale): %s", a.state, a.labels)
