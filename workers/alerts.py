"""Verdicts -> Alert records, at most one per (detector, topic, language, window).

A window keeps growing after it first looks anomalous; without the gate every later batch would
re-fire. The gate is a Redis SET NX, so it also holds across several workers.
"""
from __future__ import annotations

import hashlib
import time

from babelwatch.schema import Alert
from workers.detectors.base import Verdict
from workers.windows import WindowState


def build_alert(window: WindowState, verdict: Verdict, now: float | None = None) -> Alert:
    key = f"{verdict.detector}|{window.topic}|{window.lang}|{window.size_s}|{window.start}"
    return Alert(
        id=hashlib.sha1(key.encode()).hexdigest()[:16],
        detector=verdict.detector,
        topic=window.topic,
        lang=window.lang,
        window_start=float(window.start),
        window_s=window.size_s,
        value=verdict.value,
        baseline=verdict.baseline,
        score=round(verdict.score, 3),
        threshold=verdict.threshold,
        severity="critical" if verdict.score >= 2 * verdict.threshold else "warning",
        message=f"{window.topic} [{window.lang}]: {verdict.message}",
        fired_at=now if now is not None else time.time(),
    )


class AlertGate:
    def __init__(self, redis, prefix: str = "bw", ttl_s: int = 86_400, history_len: int = 1000) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.history_len = history_len

    async def admit(self, alerts: list[Alert]) -> list[Alert]:
        """The alerts not fired before (one round trip for the whole list)."""
        if not alerts:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for a in alerts:
            pipe.set(f"{self.prefix}:alerted:{a.id}", a.fired_at, nx=True, ex=self.ttl_s)
        admitted = [a for a, fresh in zip(alerts, await pipe.execute()) if fresh]
        if admitted:  # rare: a second round trip only when something fired
            await self.redis.lpush(self.history_key, *(a.model_dump_json() for a in admitted))
            await self.redis.ltrim(self.history_key, 0, self.history_len - 1)
        return admitted

    @property
    def history_key(self) -> str:
        return f"{self.prefix}:alerts:history"

    async def history(self, limit: int = 100) -> list[Alert]:
        """Newest first."""
        raw = await self.redis.lrange(self.history_key, 0, max(0, limit - 1))
        return [Alert.model_validate_json(r) for r in raw]
