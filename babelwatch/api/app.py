"""The HTTP API: trends, alerts, subscriptions, silences, health. OpenAPI at /openapi.json.

Reads go straight to Redis (the windows, alert states and alert history the workers write); the API
holds no state of its own, so any number of replicas can run. Writes need a bearer token.

The live alert stream (``GET /v1/alerts/stream``, Server-Sent Events) comes from the notifier's
in-process broadcaster: it is served where the app hosts the notifier (``create_app(settings,
notifier=...)``, what ``babelwatch notify`` runs); elsewhere it answers 503.
"""
from __future__ import annotations

from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI

from babelwatch.api import routes_alerts, routes_health, routes_subscriptions, routes_trends
from babelwatch.settings import Settings
from workers.alerting.state_store import RedisAlertStateStore
from workers.alerting.store import AlertConfigStore
from workers.alerts import AlertHistory
from workers.windows import WindowSpec, WindowStore


def create_app(settings: Settings, notifier=None) -> FastAPI:
    """``notifier``: a ``workers.notifier.Notifier`` started and stopped with the app (its SSE
    broadcaster then feeds ``/v1/alerts/stream``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        r = aioredis.from_url(settings.redis_url)
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
        try:
            if notifier is not None:
                await notifier.start()
            try:
                yield
            finally:
                if notifier is not None:
                    await notifier.stop()
        finally:
            await r.aclose()

    app = FastAPI(
        title="babelwatch",
        version="0.1.0",
        description="Real-time multilingual sentiment: trends per topic and language, alerts.",
        lifespan=lifespan,
    )
    app.include_router(routes_health.router)
    app.include_router(routes_trends.router, prefix="/v1")
    app.include_router(routes_alerts.router, prefix="/v1")
    app.include_router(routes_subscriptions.router, prefix="/v1")
    return app
