"""The HTTP API: trends, alerts, subscriptions, silences, health. OpenAPI at /openapi.json.

Reads go straight to Redis (the windows, alert states and alert history the workers write); the API
holds no state of its own, so any number of replicas can run.

The dashboard is the page at ``/`` (babelwatch.api.routes_dashboard); ``/docs`` works offline.
Cross-origin pages may call the API only from ``BABELWATCH_API_CORS_ORIGINS`` (default none).

Every request but ``/health``, ``/ready``, the OpenAPI document and the page's static files needs
a bearer token: scope ``read`` for GET, ``write`` for the rest (babelwatch.api.auth: several tokens, a file re-read when
it changes). The token and then the body size (``BABELWATCH_API_MAX_BODY_BYTES``) are checked by
an ASGI middleware before any body byte is read (babelwatch.api.guard). Receiver URLs are answered
redacted (babelwatch.api.redact) and checked by the SSRF guard when written; live streams are capped
per token and per process (babelwatch.api.streams).

The live alert stream (``GET /v1/alerts/stream``, Server-Sent Events) comes from the notifier's
in-process broadcaster: it is served where the app hosts the notifier (``create_app(settings,
notifier=...)``, what ``babelwatch notify`` runs); elsewhere it answers 404 (and is not documented).
"""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware

from babelwatch.api import (routes_alerts, routes_dashboard, routes_health, routes_stories, routes_subscriptions,
                            routes_trends)
from babelwatch.api.auth import TokenStore
from babelwatch.api.errors import validation_error_handler
from babelwatch.api.guard import ApiGuard
from babelwatch.api.streams import StreamSlots
from contracts.settings import Settings
from workers.alerting.sinks.netguard import AddressGuard
from workers.alerting.state_store import RedisAlertStateStore
from workers.alerting.store import AlertConfigStore
from workers.alerts import AlertHistory
from workers.redis_client import async_redis
from workers.windows import WindowSpec, WindowStore


def create_app(settings: Settings, notifier=None) -> FastAPI:
    """``notifier``: a ``stream.notifier.Notifier`` started and stopped with the app (its SSE
    broadcaster then feeds ``/v1/alerts/stream``)."""
    tokens = TokenStore.from_settings(settings)
    sampler = None
    if notifier is not None and settings.dashboard_samples > 0:
        from babelwatch.api.samples import EventSampler

        sampler = EventSampler(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        r = async_redis(settings)  # TLS/ACL from Settings
        app.state.settings = settings
        app.state.redis = r
        app.state.windows = WindowStore(
            r, settings.window_s, settings.window_retention, settings.redis_prefix, settings.spike_history,
            extra=[WindowSpec.parse(w) for w in settings.extra_windows.split(",") if w.strip()],
            allowed_lateness_s=settings.allowed_lateness_s,
        )
        app.state.alerts = AlertHistory(r, settings.redis_prefix)
        app.state.alert_state = RedisAlertStateStore(r, settings.redis_prefix)
        app.state.alert_config = AlertConfigStore(r, settings.redis_prefix)
        app.state.broadcaster = notifier.broadcaster if notifier is not None else None
        app.state.sampler = sampler
        # the notifier's own allowances: what it would refuse to deliver to is refused at creation
        app.state.guard = AddressGuard.from_settings(settings.alerting_allow_private,
                                                     settings.alerting_allowed_networks, resolve_timeout_s=3.0)
        try:
            if notifier is not None:
                await notifier.start()
            if sampler is not None:
                await sampler.start()
            try:
                yield
            finally:
                if sampler is not None:
                    await sampler.stop()
                if notifier is not None:
                    await notifier.stop()
        finally:
            await r.aclose()

    app = FastAPI(
        title="babelwatch",
        version="0.1.0",
        description="Real-time multilingual sentiment: trends per topic and language, alerts.",
        lifespan=lifespan,
        docs_url=None,  # served offline by routes_dashboard (the default page loads Swagger UI from a CDN)
        redoc_url=None,
    )
    app.state.tokens = tokens
    app.state.stream_slots = StreamSlots(settings.api_max_streams_per_token, settings.api_max_streams)
    app.add_middleware(ApiGuard, tokens=tokens, max_body=settings.api_max_body_bytes, routes=lambda: _flat_routes(app))
    origins = [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]
    if origins:  # outside the guard: a preflight carries no token
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"], max_age=600)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.include_router(routes_dashboard.page_router)
    routes_dashboard.mount_files(app)
    app.include_router(routes_health.router)
    routes_health.install(app, settings, notifier)  # /metrics, /live, /ready; requests counted
    app.include_router(routes_trends.router, prefix="/v1")
    app.include_router(routes_alerts.router, prefix="/v1")
    app.include_router(routes_alerts.stream_router if notifier is not None else routes_alerts.no_stream_router,
                       prefix="/v1")
    app.include_router(routes_subscriptions.router, prefix="/v1")
    app.include_router(routes_dashboard.router, prefix="/v1")
    app.include_router(routes_stories.router, prefix="/v1")
    return app


def _flat_routes(app: FastAPI) -> list:
    """Every route with its path regex and methods: newer FastAPI keeps included routers nested
    (``iter_route_contexts`` flattens them), older ones copied their routes into ``app.routes``."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return list(app.routes)
    return list(iter_route_contexts(app.routes))
