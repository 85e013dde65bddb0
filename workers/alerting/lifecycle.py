"""Alert lifecycle: "condition active/inactive at time now" observations -> states -> notifications.

Prometheus alerting-rule semantics per label set (inactive -> pending -> firing -> resolved),
committed compare-and-set once per batch; ``now`` is processing time, and
:meth:`AlertLifecycle.sweep` treats alerts no longer observed as inactive.
States, transitions and timing: docs/design.md#alert-lifecycle
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping

import mode

from workers.alerting.model import AlertInstance, clean_labels, fingerprint
from workers.alerting.state_store import ABSENT, AlertStateStore, Commit, Versioned

log = logging.getLogger("babelwatch.alerting.lifecycle")


@dataclass(frozen=True)
class Timing:
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    repeat_interval_s: float = 3600.0


@dataclass(frozen=True)
class Observation:
    """The alert condition for ``labels`` is (not) met now; annotations describe the latest value."""

    labels: Mapping[str, str]
    active: bool
    annotations: Mapping[str, Any] | None = None


def step(prev: AlertInstance | None, obs: Observation, now: float, timing: Timing,
         labels: dict[str, str] | None = None) -> tuple[AlertInstance | None, bool]:
    """One observation through the state machine: (new state, notify?).

    Returns ``prev`` itself (same object) when nothing changed, a new object otherwise.
    """
    state = prev.state if prev is not None else "inactive"
    if obs.active:
        if prev is None or state in ("inactive", "resolved"):
            cur = AlertInstance.model_construct(
                labels=labels if labels is not None else clean_labels(dict(obs.labels)),
                annotations=dict(obs.annotations or {}),
                state="pending", active_since=now, last_active_at=now,
                fired_at=None, resolved_at=None, last_notified_at=None,
            )
        else:
            update: dict[str, Any] = {"last_active_at": max(now, prev.last_active_at or now)}
            if obs.annotations is not None:
                update["annotations"] = dict(obs.annotations)
            cur = prev.model_copy(update=update)
        if cur.state == "pending" and now - (cur.active_since or now) >= timing.for_s:
            cur.state, cur.fired_at, cur.last_notified_at = "firing", now, now
            return cur, True
        if cur.state == "firing" and now - (cur.last_notified_at or 0.0) >= timing.repeat_interval_s:
            cur.last_notified_at = now
            return cur, True
        return cur, False

    if state == "pending":
        return prev.model_copy(update={"state": "inactive", "active_since": None}), False
    if state == "firing":
        if now - (prev.last_active_at or now) >= timing.keep_firing_for_s:
            return prev.model_copy(update={"state": "resolved", "resolved_at": now, "last_notified_at": now}), True
        if now - (prev.last_notified_at or 0.0) >= timing.repeat_interval_s:
            return prev.model_copy(update={"last_notified_at": now}), True
    return prev, False


Notify = Callable[[list[AlertInstance]], Awaitable[None] | None]


class AlertLifecycle(mode.Service):
    """Evaluates observation batches against shared state; returns the alerts to notify.

    ``timing`` is one :class:`Timing` or a function of the labels (e.g. per detector).
    Started (a ``mode.Service``), it runs the staleness sweep every ``sweep_interval_s`` (when ``stale_after_s`` is set)
    and hands what it resolves to ``on_notify`` after every sweep, even when that is nothing: the
    worker drains its notification outbox there, which also picks up what an earlier drain left
    (a crashed worker's, or one skipped because another worker held the drain lock).
    """

    def __init__(
        self,
        store: AlertStateStore,
        timing: Timing | Callable[[Mapping[str, str]], Timing] = Timing(),
        clock: Callable[[], float] = time.time,
        *,
        stale_after_s: float | None = None,
        sweep_interval_s: float = 15.0,
        on_notify: Notify | None = None,
        cache_size: int = 100_000,
        max_retries: int = 5,
        **service_kwargs,
    ) -> None:
        super().__init__(**service_kwargs)
        self.store = store
        self._timing = timing
        self.clock = clock
        self.stale_after_s = stale_after_s
        self.sweep_interval_s = sweep_interval_s
        self.on_notify = on_notify
        self.cache_size = cache_size
        self.max_retries = max_retries
        self._cache: OrderedDict[str, Versioned] = OrderedDict()
        self.conflicts = 0  # CAS retries so far (metrics)

    def timing(self, labels: Mapping[str, str]) -> Timing:
        return self._timing(labels) if callable(self._timing) else self._timing

    # ------------------------------------------------------------------------------------ evaluation

    async def observe(self, observations: Iterable[Observation], now: float | None = None) -> list[AlertInstance]:
        """Fold a batch of observations into the shared state; the alerts to notify (firing or
        resolved, at most one per fingerprint), in first-observation order. Each goes to the store
        with its transition (``Commit.note``): the Redis store queues it in its outbox."""
        now = self.clock() if now is None else now
        by_fp: dict[str, tuple[dict[str, str], list[Observation]]] = {}
        for o in observations:
            labels = clean_labels(dict(o.labels))
            fp = fingerprint(labels)
            if fp in by_fp:
                by_fp[fp][1].append(o)
            else:
                by_fp[fp] = (labels, [o])
        notified: dict[str, AlertInstance] = {}
        todo = list(by_fp)
        for attempt in range(self.max_retries + 1):
            commits: list[Commit] = []
            outcome: dict[str, tuple[Versioned, AlertInstance | None, AlertInstance | None]] = {}
            for fp in todo:
                labels, obs = by_fp[fp]
                base = self._cache.get(fp, ABSENT)
                cur, note = base.alert, None
                timing = self.timing(labels)
                for o in obs:
                    cur, notify = step(cur, o, now, timing, labels)
                    if notify:
                        note = cur
                changed = cur is not base.alert
                commits.append(Commit(fp, base.version, cur if changed else None, note))
                outcome[fp] = (base, cur if changed else None, note)
            conflicts = await self.store.commit(commits)
            for fp, (base, written, note) in outcome.items():
                if fp in conflicts:
                    continue
                if written is not None:
                    self._remember(fp, Versioned(base.version + 1, written))
                if note is not None:
                    notified[fp] = note
            for fp, current in conflicts.items():
                self._remember(fp, current)
            if not conflicts:
                break
            self.conflicts += len(conflicts)
            todo = list(conflicts)
        else:
            log.error("alert state: %d fingerprints still conflicting after %d retries; skipped",
                      len(todo), self.max_retries)
        return [notified[fp] for fp in by_fp if fp in notified]

    async def sweep(self, now: float | None = None) -> list[AlertInstance]:
        """Treat pending/firing alerts not observed for ``stale_after_s`` as inactive."""
        if self.stale_after_s is None:
            return []
        now = self.clock() if now is None else now
        stale = await self.store.stale(now - self.stale_after_s)
        for fp, v in stale.items():
            self._remember(fp, v)
        return await self.observe([Observation(v.alert.labels, False) for v in stale.values() if v.alert], now)

    async def get(self, labels: Mapping[str, str]) -> AlertInstance | None:
        fp = fingerprint(clean_labels(dict(labels)))
        v = (await self.store.read([fp]))[fp]
        self._remember(fp, v)
        return v.alert

    def _remember(self, fp: str, v: Versioned) -> None:
        if v.version == 0:
            self._cache.pop(fp, None)
            return
        self._cache[fp] = v
        self._cache.move_to_end(fp)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    # ------------------------------------------------------------------------------------- lifetime

    @mode.Service.task
    async def _sweeper(self) -> None:
        if self.stale_after_s is None:
            return
        # mode's timer sleeps through Service.sleep, so stop() ends the wait at once
        async for _ in self.itertimer(self.sweep_interval_s, name="alert-lifecycle-sweep"):
            try:
                notes = await self.sweep()
                if self.on_notify is not None:
                    res = self.on_notify(notes)
                    if inspect.isawaitable(res):
                        await res
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert staleness sweep failed")
