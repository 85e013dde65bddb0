"""Routes + silences + aggregation groups -> notification groups (Alertmanager's dispatcher).

Every matching route gets the alert; alerts are grouped by ``group_by`` and flushed on
``group_wait`` / ``group_interval`` / ``repeat_interval``; silences apply at flush time. State is
in process memory: one router (the notifier) per deployment.
Grouping, delivery-tracking sources, ``resolve_unconfirmed``: docs/design.md#routing-and-grouping
"""
from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Iterable, Sequence

import mode

from workers.alerting.model import AlertInstance, NotificationGroup, Route, Silence, fingerprint

log = logging.getLogger("babelwatch.alerting.routing")


@dataclass
class _Group:
    route: Route
    key: str
    labels: dict[str, str]
    next_flush: float
    alerts: dict[str, AlertInstance] = field(default_factory=dict)
    notified_firing: frozenset[str] = frozenset()
    last_sent: float | None = None
    sources: dict[str, list] = field(default_factory=dict)  # fingerprint -> held sources
    unconfirmed: set[str] = field(default_factory=set)

    def release_sources(self, keep: Iterable[str] = ()) -> list:
        """Release the held sources except those of ``keep`` (fingerprints), which are returned."""
        kept = set(keep)
        out = []
        for fp, srcs in self.sources.items():
            if fp in kept:
                out += srcs
            else:
                for src in srcs:
                    src.release()
        self.sources = {}
        return out


def group_key(route: Route, group_labels: dict[str, str]) -> str:
    return f"{route.id}:{fingerprint(group_labels)}"


OnGroups = Callable[[list[NotificationGroup]], Awaitable[None] | None]


class Router(mode.Service):
    """Routes alerts to notification groups and flushes them on their timers (a ``mode.Service``)."""

    def __init__(
        self,
        routes: Sequence[Route] = (),
        silences: Sequence[Silence] = (),
        clock: Callable[[], float] = time.time,
        *,
        on_groups: OnGroups | None = None,
        config_store=None,
        refresh_s: float = 5.0,
        tick_s: float = 0.5,
        resolve_unconfirmed: bool = False,
        **service_kwargs,
    ) -> None:
        super().__init__(**service_kwargs)
        self.clock = clock
        self.resolve_unconfirmed = resolve_unconfirmed
        self.on_groups = on_groups
        self.config_store = config_store
        self.refresh_s = refresh_s
        self.tick_s = tick_s
        self.routes: dict[str, Route] = {}
        self.silences: list[Silence] = list(silences)
        self.groups: dict[str, _Group] = {}
        self._config_version: int | None = None
        self._wake = asyncio.Event()
        self.set_routes(routes)

    # ------------------------------------------------------------------------------------ config

    def set_routes(self, routes: Iterable[Route]) -> None:
        new = {r.id: r for r in routes}
        for key, g in list(self.groups.items()):
            r = new.get(g.route.id)
            if r is None or r.group_by != g.route.group_by:
                del self.groups[key]  # route gone, or grouping changed: its groups start over
                g.release_sources()
            else:
                g.route = r
        self.routes = new

    def set_silences(self, silences: Iterable[Silence]) -> None:
        self.silences = list(silences)

    def silenced_by(self, labels: dict[str, str], now: float) -> list[str]:
        return [s.id for s in self.silences if s.mutes(labels, now)]

    async def refresh(self) -> bool:
        """Reload routes and silences from the config store when its version moved."""
        if self.config_store is None:
            return False
        version = await self.config_store.version()
        if version == self._config_version:
            return False
        routes = await self.config_store.list_routes()
        silences = await self.config_store.list_silences()
        self.set_routes(routes)
        self.set_silences(silences)
        self._config_version = version
        return True

    # ---------------------------------------------------------------------------------- grouping

    def ingest(self, alerts: Iterable[AlertInstance], now: float | None = None,
               sources: Sequence | None = None) -> None:
        """Take firing/resolved alerts (lifecycle notifications) into their routes' groups;
        ``sources[i]`` (optional) is held while ``alerts[i]`` waits in a group (module doc)."""
        now = self.clock() if now is None else now
        for a, src in zip(alerts, sources if sources is not None else itertools.repeat(None)):
            if a.state not in ("firing", "resolved"):
                continue
            fp = a.fingerprint
            for route in self.routes.values():
                if not route.matches(a.labels):
                    continue
                labels = route.group_labels(a.labels)
                key = group_key(route, labels)
                g = self.groups.get(key)
                unknown = a.state == "resolved" and (g is None or (fp not in g.alerts and fp not in g.notified_firing))
                if unknown and not (self.resolve_unconfirmed and route.send_resolved):
                    continue  # nothing was said about it here: nothing to resolve
                if g is None:
                    g = self.groups[key] = _Group(route, key, labels, next_flush=now + route.group_wait)
                    self._wake.set()
                if unknown:
                    g.unconfirmed.add(fp)
                elif a.state == "firing":
                    g.unconfirmed.discard(fp)
                g.alerts[fp] = a
                if src is not None:
                    src.hold()
                    g.sources.setdefault(fp, []).append(src)

    def next_flush_at(self) -> float | None:
        return min((g.next_flush for g in self.groups.values()), default=None)

    def flush(self, now: float | None = None) -> list[NotificationGroup]:
        """The notifications due at ``now``; advances the groups' timers."""
        now = self.clock() if now is None else now
        out: list[NotificationGroup] = []
        for key, g in list(self.groups.items()):
            if g.next_flush > now:
                continue
            route = g.route
            live = [a for a in g.alerts.values() if not self.silenced_by(a.labels, now)]
            firing = [a for a in live if a.state == "firing"]
            resolved = [a for a in live if a.state == "resolved"
                        and (a.fingerprint in g.notified_firing or a.fingerprint in g.unconfirmed)] \
                if route.send_resolved else []
            firing_fps = frozenset(a.fingerprint for a in firing)
            changed = bool(firing_fps - g.notified_firing) or bool(resolved)
            repeat = bool(firing) and g.last_sent is not None and now - g.last_sent >= route.repeat_interval
            if (changed or repeat) and (firing or resolved):
                listed = [a.fingerprint for a in firing + resolved]
                out.append(NotificationGroup(
                    group_key=key, route_id=route.id, receivers=route.receivers, group_labels=g.labels,
                    status="firing" if firing else "resolved", alerts=firing + resolved, created_at=now,
                    repeat_interval=route.repeat_interval, sources=g.release_sources(keep=listed),
                    unconfirmed=sorted(a.fingerprint for a in resolved if a.fingerprint not in g.notified_firing),
                ))
                g.last_sent = now
                g.notified_firing = firing_fps
            g.release_sources()  # what this flush did not list has nothing left to deliver
            g.unconfirmed.clear()
            for fp in [fp for fp, a in g.alerts.items() if a.state == "resolved"]:
                del g.alerts[fp]
            g.notified_firing = g.notified_firing & frozenset(g.alerts)
            if not g.alerts:
                del self.groups[key]
            else:
                g.next_flush = now + route.group_interval
        return out

    # ---------------------------------------------------------------------------------- lifetime

    async def on_start(self) -> None:
        await self.refresh()

    @mode.Service.task
    async def _run(self) -> None:
        # not a plain timer: a new alert wakes the loop early (``_wake``) to honour group_wait
        next_refresh = self.clock() + self.refresh_s
        while True:
            try:
                now = self.clock()
                if self.config_store is not None and now >= next_refresh:
                    next_refresh = now + self.refresh_s
                    await self.refresh()
                groups = self.flush(now)
                if groups and self.on_groups is not None:
                    res = self.on_groups(groups)
                    if inspect.isawaitable(res):
                        await res
                due = self.next_flush_at()
                wait = self.tick_s if due is None else max(0.0, min(self.tick_s, due - self.clock()))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert router tick failed")
                wait = self.tick_s
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
