"""The worker's observability endpoint, a ``mode.Service``: ``/metrics`` (Prometheus), ``/live`` and
``/ready`` on the first free port of ``worker_metrics_port`` .. ``+worker_metrics_ports-1``.

Wiring (stream/agents.py): ``app.service(WorkerObserver(settings, source))``; on start it appends
its :meth:`WorkerObserver.observe` to ``source.observers`` (called after each committed batch).
The source gives ``lag()``, ``assigned()`` and ``last_batch_done_at`` (monotonic). Readiness and
liveness rules: workers/health.py; why: docs/design.md "Observability"."""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from typing import Any, Awaitable, Callable

import mode
from aiohttp import web
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, GCCollector, PlatformCollector,
                               ProcessCollector, generate_latest)

from contracts.keys import RedisKeys
from contracts.settings import Settings
from workers.health import Health
from workers.metrics import (BoundedLabel, ProbeCollector, SourceCollector, WorkerMetrics, build_info, model_hash,
                             window_shapes)

log = logging.getLogger("babelwatch.observe")
Check = Callable[[], Awaitable[bool]]


def process_registry() -> CollectorRegistry:
    """A registry with the process's CPU, memory, file descriptors, GC and Python version."""
    r = CollectorRegistry()
    ProcessCollector(registry=r)
    PlatformCollector(registry=r)
    GCCollector(registry=r)
    return r


def redis_check(client) -> Check:
    async def check() -> bool:
        return bool(await asyncio.wait_for(client.ping(), 2.0))
    return check


def triton_check(url: str, model: str) -> tuple[Check, Callable[[], Awaitable[None]]]:
    """(is the model ready, close) over Triton's gRPC endpoint."""
    import tritonclient.grpc.aio as grpcclient

    client = grpcclient.InferenceServerClient(url)

    async def check() -> bool:
        return bool(await asyncio.wait_for(client.is_model_ready(model), 2.0))
    return check, client.close


class DependencyChecks:
    """Runs named checks, feeds a :class:`Health`, and exports ``babelwatch_dependency_up`` and
    ``babelwatch_dependency_check_seconds`` (a Redis check is a PING: its round trip)."""

    def __init__(self, health: Health, checks: dict[str, Check], registry: CollectorRegistry) -> None:
        self.health = health
        self.checks = checks
        self.up = Gauge("babelwatch_dependency_up", "1 if the dependency answered its last check",
                        ["dependency"], registry=registry)
        self.seconds = Gauge("babelwatch_dependency_check_seconds", "duration of the last check",
                             ["dependency"], registry=registry)

    async def run(self) -> None:
        for name, check in self.checks.items():
            t0 = time.perf_counter()
            try:
                ok = await check()
            except Exception:  # noqa: BLE001 - any failure to answer is "down"
                ok = False
            self.seconds.labels(name).set(time.perf_counter() - t0)
            self.up.labels(name).set(1 if ok else 0)
            self.health.dependency(name, ok)


class RedisFigures:
    """What the workers keep in Redis, read on each check: outbox depths, the shared stream
    counters (``{prefix}:stats``: the same figure from every worker, use max()), and the per-topic
    watermark (newest event time minus the allowed lateness)."""

    def __init__(self, redis, settings: Settings, registry: CollectorRegistry) -> None:
        self.redis = redis
        self.keys = RedisKeys(settings.redis_prefix)
        self.lateness = settings.allowed_lateness_s
        self.topic = BoundedLabel(settings.metrics_max_topics)
        self.outbox = Gauge("babelwatch_outbox_depth", "items waiting in a Redis outbox", ["outbox"], registry=registry)
        self.stats = Gauge("babelwatch_stream_stat", "shared stream counters kept in Redis (late, "
                           "redelivered_skipped, closed_dropped, topic_lifetime_changes)", ["name"], registry=registry)
        self.alerts_active = Gauge("babelwatch_alerts_active", "alerts pending or firing (shared, from Redis)",
                                   registry=registry)
        self.watermark = Gauge("babelwatch_watermark_timestamp_seconds", "per event topic: newest event time "
                               "minus the allowed lateness (shared, from Redis)", ["topic"], registry=registry)
        self.names = BoundedLabel(16)

    async def read(self) -> None:
        async with self.redis.pipeline(transaction=False) as p:
            p.llen(self.keys.closed_outbox)
            p.llen(self.keys.alerts_outbox)
            p.hgetall(self.keys.stats)
            p.hgetall(self.keys.watermarks)
            p.zcard(self.keys.alerts_live)
            closed, alerts, stats, wm, active = await p.execute()
        self.alerts_active.set(active)
        self.outbox.labels("closed_windows").set(closed)
        self.outbox.labels("alerts").set(alerts)
        for k, v in stats.items():
            self.stats.labels(self.names(_text(k))).set(float(v))
        for k, v in wm.items():
            self.watermark.labels(self.topic(_text(k))).set(float(v) - self.lateness)


def _text(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


class ProbeServer(mode.Service):
    """``/metrics``, ``/live``, ``/ready`` over aiohttp on the first free port of a range."""

    def __init__(self, host: str, ports: range, registries: list[CollectorRegistry],
                 live: Callable[[], Any], ready: Callable[[], Any], **kwargs) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.ports = ports
        self.registries = registries
        self.live = live
        self.ready = ready
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/live", self._live)
        app.router.add_get("/ready", self._ready)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for port in self.ports:
            site = web.TCPSite(self._runner, self.host, port)
            try:
                await site.start()
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    continue
                raise
            self.port = port
            log.info("metrics and probes on http://%s:%d (/metrics, /live, /ready)", self.host, port)
            return
        log.error("no free port for /metrics in %s..%s: running without metrics and probes",
                  self.ports.start, self.ports.stop - 1)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _request) -> web.Response:
        body = b"".join(generate_latest(r) for r in self.registries)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _live(self, _request) -> web.Response:
        return self._probe(self.live())

    async def _ready(self, _request) -> web.Response:
        return self._probe(self.ready())

    @staticmethod
    def _probe(probe) -> web.Response:
        return web.json_response(probe.body(), status=200 if probe.ok else 503)


class WorkerObserver(mode.Service):
    """The worker's metrics, probes and dependency checks; ``source``: the batch source (or None)."""

    def __init__(self, settings: Settings, source: Any = None, *, checks: dict[str, Check] | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        s = settings
        self.settings = s
        self.source = source
        self.registry = CollectorRegistry()
        self.metrics = WorkerMetrics(self.registry, kafka_topic=s.topic_events, max_topics=s.metrics_max_topics,
                                     windows=window_shapes(s.window_s, s.extra_windows))
        build_info(self.registry, "worker", s.triton_model, model_hash(s.triton_repo, s.triton_model))
        self.health = Health(s.stall_after_s)
        self._checks_given = checks
        self.checks: DependencyChecks | None = None
        self.figures: RedisFigures | None = None
        self._redis = None
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self.registry.register(ProbeCollector(self.live, self.ready))
        if source is not None:
            self.registry.register(SourceCollector(source.lag, source.assigned, self._since_last_batch))
        self.server: ProbeServer | None = None
        if s.worker_metrics_port:
            self.server = ProbeServer(s.worker_metrics_host,
                                      range(s.worker_metrics_port, s.worker_metrics_port + s.worker_metrics_ports),
                                      [self.registry, process_registry()], self.live, self.ready)

    def observe(self, result: Any, n: int, seconds: float) -> None:
        """The source's observer: one committed batch."""
        self.metrics.observe_batch(result, n, seconds)

    async def on_start(self) -> None:
        from workers.redis_client import async_redis

        s = self.settings
        checks = self._checks_given
        if checks is None:
            self._redis = async_redis(s)  # TLS and the ACL user from Settings
            self._closers.append(self._redis.aclose)
            triton, close = triton_check(s.triton_url, s.triton_model)
            self._closers.append(close)
            checks = {"redis": redis_check(self._redis), "triton": triton}
            self.figures = RedisFigures(self._redis, s, self.registry)
        self.checks = DependencyChecks(self.health, checks, self.registry)
        if self.source is not None and self.observe not in self.source.observers:
            self.source.observers.append(self.observe)
        if self.server is not None:
            await self.add_runtime_dependency(self.server)
        self.add_future(self._check_every())

    async def on_stop(self) -> None:
        for close in self._closers:
            try:
                await close()
            except Exception:  # noqa: BLE001
                log.debug("observer: close failed", exc_info=True)
        self._closers.clear()

    async def _check_every(self) -> None:
        while not self.should_stop:
            await self.check_once()
            await self.sleep(self.settings.health_check_interval_s)

    async def check_once(self) -> None:
        assert self.checks is not None
        await self.checks.run()
        if self.figures is not None and self.health.dependencies.get("redis"):
            try:
                await self.figures.read()
            except Exception:  # noqa: BLE001 - figures are best effort; readiness says Redis is down
                log.debug("observer: Redis figures not read", exc_info=True)

    # --- the probes' facts, from the source ---------------------------------------------------------

    def _lag_total(self) -> int | None:
        if self.source is None:
            return None
        try:
            return sum(max(0, int(n)) for n in self.source.lag().values())
        except Exception:  # noqa: BLE001
            return None

    def _last_batch(self) -> float | None:
        return getattr(self.source, "last_batch_done_at", None) if self.source is not None else None

    def _since_last_batch(self) -> float:
        last = self._last_batch()
        return time.monotonic() - (last if last is not None else self.health.started_at)

    def _joined(self) -> bool:
        if self.source is None:
            return False
        joined = getattr(self.source, "joined", None)
        if joined is not None:
            return bool(joined() if callable(joined) else joined)
        try:
            return len(list(self.source.assigned())) > 0
        except Exception:  # noqa: BLE001
            return False

    def live(self):
        return self.health.liveness(self._lag_total(), self._last_batch())

    def ready(self):
        return self.health.readiness(self._joined())
