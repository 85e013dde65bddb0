"""Closed windows -> stateful detectors -> alerts.

Each (topic, language, window shape) series has its own detectors (workers/detectors/registry.py)
with their state in one Redis key per series, so a restarted or rebalanced worker continues where
the last one stopped. Per batch: one round trip to load states, one for the lifecycle, one to save
the states, in that order: the lifecycle commits before the states are saved (why: docs/design.md,
"Alert lifecycle")."""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from typing import Sequence

import orjson

from contracts.keys import RedisKeys
from contracts.schema import DeadLetter
from contracts.windows import ClosedWindow, WindowSpec

from workers.alerting.model import AlertInstance
from workers.alerts import STAGE_CLOSED, AlertEvaluator, WindowVerdict
from workers.detectors.registry import DetectorConfig, restore_detectors, snapshot
from workers.isolation import bisect
from workers.validate import EventValidator

log = logging.getLogger("babelwatch.detection")


class ClosedWindowDetection:
    def __init__(self, redis, config: DetectorConfig, alerts: AlertEvaluator, prefix: str = "bw") -> None:
        self.redis = redis
        self.config = config
        self.alerts = alerts
        self.keys = RedisKeys(prefix)

    def state_key(self, topic: str, lang: str, size_s: int, hop_s: int) -> str:
        return self.keys.detector(WindowSpec(size_s, hop_s or size_s).name, topic, lang)

    async def process_isolated(self, records: Sequence) -> tuple[list[AlertInstance], list[DeadLetter]]:
        """Raw closed-window records (``.value``, ``.origin``) -> (notifications, dead letters): a
        record that is not a closed window, or that makes :meth:`process` fail alone, is
        dead-lettered; the others are judged (workers.isolation)."""
        dead, parsed = [], []
        for rec in records:
            try:
                parsed.append((rec, ClosedWindow.from_json(rec.value)))
            except Exception as exc:  # anyone who may produce to the topic can send anything
                dead.append(EventValidator.dead(rec.value, rec.origin, "invalid_event",
                                                [{"loc": "closed_window", "msg": f"{type(exc).__name__}: {exc}"}]))
        parts, failures = await bisect(parsed, lambda chunk: self.process([w for _, w in chunk]))
        for (rec, _), exc in failures:
            log.error("closed window dead-lettered (processing_failed, %s): %s: %s", rec.origin,
                      type(exc).__name__, exc, exc_info=True)
            dead.append(EventValidator.dead(rec.value, rec.origin, "processing_failed",
                                            [{"type": type(exc).__name__, "msg": str(exc)[:1000]}]))
        return [n for part in parts for n in part], dead

    async def process(self, windows: Sequence[ClosedWindow], now: float | None = None) -> list[AlertInstance]:
        """The alert notifications (firing/resolved) these windows caused; ``now`` is processing time."""
        series: dict[tuple, list[ClosedWindow]] = defaultdict(list)
        for w in windows:
            if w.size_s == self.config.resolve(w.topic).window_s:  # other shapes feed no detector
                series[(w.topic, w.lang, w.size_s, w.step_s)].append(w)  # hop 0 = tumbling: one series
        if not series:
            return []
        keys = list(series)
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.get(self.state_key(*k))
        saved = await pipe.execute()

        now = time.time() if now is None else now
        verdicts, states = [], {}
        for k, raw in zip(keys, saved):
            detectors = restore_detectors(self.config, k[0], orjson.loads(raw) if raw else None)
            for w in sorted(series[k], key=lambda w: w.start):  # the outbox may hand them over unordered
                for det in detectors:
                    verdict = det.update(w)
                    if verdict is not None:
                        verdicts.append(WindowVerdict(w.topic, w.lang, w.size_s, w.start, verdict, STAGE_CLOSED))
            states[self.state_key(*k)] = orjson.dumps(snapshot(detectors))
        notified = await self.alerts.evaluate(verdicts, now)  # first: see the module docstring
        await self.save_states(states)
        return notified

    async def save_states(self, states: dict[str, bytes]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for key, blob in states.items():
            pipe.set(key, blob)
        await pipe.execute()
