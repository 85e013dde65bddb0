"""Liveness and readiness from plain facts, for the worker's and the notifier's probes (served by
stream/observe.py and babelwatch/api/routes_health.py). No I/O here: the servers feed it.

Readiness: joined its consumer group and every dependency answered its last check. Liveness: the
process still makes progress -- it fails only when work is waiting (lag > 0) and nothing finished
for ``stall_after_s``; a dependency that is down makes the process unready, not dead, because the
worker rightly waits for it instead of dropping events (docs/design.md "Observability")."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Probe:
    ok: bool
    reason: str  # why not ok, or "ok"; bounded words, never an address or an error message
    detail: dict = field(default_factory=dict)

    def body(self) -> dict:
        return {"status": "ok" if self.ok else "fail", "reason": self.reason, **self.detail}


class Health:
    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self.clock = clock
        self.started_at = clock()
        self.dependencies: dict[str, bool] = {}  # name -> answered its last check

    def dependency(self, name: str, ok: bool) -> None:
        self.dependencies[name] = bool(ok)

    def readiness(self, joined: bool) -> Probe:
        down = sorted(n for n, ok in self.dependencies.items() if not ok)
        detail = {"joined": joined, "dependencies": {n: ("up" if ok else "down")
                                                      for n, ok in sorted(self.dependencies.items())}}
        if not joined:
            return Probe(False, "not_joined", detail)
        if not self.dependencies:
            return Probe(False, "not_checked", detail)
        if down:
            return Probe(False, "dependency_down:" + ",".join(down), detail)
        return Probe(True, "ok", detail)

    def liveness(self, lag: int | None, last_progress_at: float | None) -> Probe:
        """``lag``: records waiting (None: unknown, taken as none); ``last_progress_at``: when work last
        finished (the clock's time; None: never, counted from start)."""
        since = self.clock() - (last_progress_at if last_progress_at is not None else self.started_at)
        detail = {"lag": lag, "seconds_since_progress": round(since, 3), "stall_after_s": self.stall_after_s}
        if lag and lag > 0 and since > self.stall_after_s:
            return Probe(False, "stalled", detail)
        return Probe(True, "ok", detail)
