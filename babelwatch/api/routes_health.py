"""Health and metrics: open (no token), for probes, load balancers and Prometheus. They say nothing
about the data; answers name only the kind of failure, never an address or a message.

``/health``: the process answers (kept for existing callers). ``/live``: where the notifier runs, its
consume loop still turns (workers/health.py); else the same as /health. ``/ready``: Redis answers
and, where the notifier runs, it joined its consumer group. ``/metrics``: Prometheus text (the
notifier's metrics, Redis figures, requests per route, process). :func:`install` adds them to an
app. docs/design.md "Observability"."""
from __future__ import annotations

import re
import time
from typing import Literal

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel

from contracts.settings import Settings
from stream.observe import DependencyChecks, RedisFigures, process_registry, redis_check
from workers.health import Health
from workers.metrics import LATENCY_BUCKETS, BoundedLabel, build_info, model_hash

router = APIRouter(tags=["health"])


class Status(BaseModel):
    status: Literal["ok"]


class Probe(BaseModel):
    status: Literal["ok", "fail"]
    reason: str


class Ready(BaseModel):
    status: Literal["ready", "unavailable"]
    redis: str | None = None
    notifier: str | None = None


@router.get("/health", response_model=Status)
async def health() -> Status:
    return Status(status="ok")


@router.get("/live", response_model=Probe, responses={503: {"model": Probe, "description": "the notifier is stuck"}})
async def live(request: Request, response: Response) -> Probe:
    notifier = getattr(request.app.state, "notifier", None)
    if notifier is None:
        return Probe(status="ok", reason="ok")
    p = notifier.live()
    response.status_code = 200 if p.ok else 503
    return Probe(status="ok" if p.ok else "fail", reason=p.reason)


@router.get("/ready", response_model=Ready,
            responses={503: {"model": Ready, "description": "Redis does not answer, or the notifier has not "
                                                            "joined its consumer group"}})
async def ready(request: Request, response: Response) -> Ready:
    error = None
    try:
        await request.app.state.redis.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        error = type(exc).__name__
    notifier = getattr(request.app.state, "notifier", None)
    if notifier is not None:
        p = notifier.ready(error is None)
        if not p.ok:
            response.status_code = 503
            return Ready(status="unavailable", redis=error, notifier=p.reason)
    if error is not None:
        response.status_code = 503
        return Ready(status="unavailable", redis=error)
    return Ready(status="ready")


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    obs: Observability = request.app.state.observability
    await obs.refresh(request.app.state.redis)
    return Response(b"".join(generate_latest(r) for r in obs.registries), media_type=CONTENT_TYPE_LATEST)


class Observability:
    """What /metrics reads: this process's registries, and the Redis figures read at each scrape."""

    def __init__(self, settings: Settings, notifier=None) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        build_info(self.registry, "notifier" if notifier is not None else "api", settings.triton_model,
                   model_hash(settings.triton_repo, settings.triton_model))
        self.registries = [self.registry, process_registry()]
        if getattr(notifier, "registry", None) is not None:
            self.registries.append(notifier.registry)
        self.health = getattr(notifier, "health", None) or Health(settings.stall_after_s)
        self.requests = Counter("babelwatch_api_requests_total", "HTTP requests, per route template, method and "
                                "status code", ["route", "method", "code"], registry=self.registry)
        self.seconds = Histogram("babelwatch_api_request_duration_seconds", "HTTP request time (until the answer "
                                 "starts), per route template", ["route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.route = BoundedLabel(64, re.compile(r"[ -~]{1,200}"))  # route templates: code-defined
        self._checks: DependencyChecks | None = None
        self._figures: RedisFigures | None = None
        self._redis = None

    async def refresh(self, redis) -> None:
        if redis is not self._redis:  # the app's client, built in its lifespan
            self._redis = redis
            self._checks = self._checks or DependencyChecks(self.health, {}, self.registry)
            self._checks.checks = {"redis": redis_check(redis)}
            self._figures = self._figures or RedisFigures(redis, self.settings, self.registry)
            self._figures.redis = redis
        await self._checks.run()
        if self.health.dependencies.get("redis"):
            try:
                await self._figures.read()
            except Exception:  # noqa: BLE001 - best effort; babelwatch_dependency_up tells why
                pass


class RequestMetrics:
    """ASGI middleware: requests per route template (never the raw path), method and status code."""

    METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

    def __init__(self, app, observability: Observability) -> None:
        self.app = app
        self.obs = observability

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        code = [500]

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                code[0] = message["status"]
                self.obs.seconds.labels(self._route(scope)).observe(time.perf_counter() - t0)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope["method"] if scope["method"] in self.METHODS else "other"
            self.obs.requests.labels(self._route(scope), method, str(code[0])).inc()

    def _route(self, scope) -> str:
        """The matched route's template with its prefix (FastAPI keeps included routers nested and
        tells the full template in its effective route context), or ``unmatched``."""
        ctx = (scope.get("fastapi") or {}).get("effective_route_context")
        route = getattr(ctx, "path_format", None) or getattr(scope.get("route"), "path_format", None)
        return self.obs.route(route) if route else "unmatched"


def install(app: FastAPI, settings: Settings, notifier=None) -> None:
    """/metrics, /live and /ready for ``app`` (and the notifier it hosts), requests counted."""
    obs = Observability(settings, notifier)
    app.state.observability = obs
    # a hosted notifier without probes of its own (a test's stub) is not asked
    app.state.notifier = notifier if hasattr(notifier, "live") and hasattr(notifier, "ready") else None
    app.add_middleware(RequestMetrics, observability=obs)
