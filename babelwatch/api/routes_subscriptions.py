"""Subscriptions (alert routes) and silences: CRUD stored in Redis.

Reads need a token with scope ``read``, writes one with scope ``write`` (babelwatch.api.auth).
Bodies are validated by the alerting models (clear 422 on bad input). Receiver URLs are answered
redacted (babelwatch.api.redact) and checked by the SSRF guard when a route is written, with the
settings the notifier delivers with (``BABELWATCH_ALERTING_ALLOW_PRIVATE`` /
``BABELWATCH_ALERTING_ALLOWED_NETWORKS``): a refused address is a 422 now, not a failed delivery later.
"""
from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from babelwatch.api.auth import require_reader, require_writer
from babelwatch.api.errors import AUTH, BODY, CONFLICT, NOT_FOUND, unprocessable
from babelwatch.api.redact import redact_route, restore_secrets
from workers.alerting.model import _ID, Route, Silence
from workers.alerting.sinks.netguard import BlockedDestination
from workers.alerting.store import AlreadyExists

router = APIRouter(tags=["subscriptions"], responses=AUTH)
read = [Depends(require_reader)]
write = [Depends(require_writer)]

RouteId = Path(max_length=64, pattern=_ID.pattern, description="the route's id")
SilenceId = Path(max_length=64, pattern=_ID.pattern, description="the silence's id")


def _store(request: Request):
    return request.app.state.alert_config


async def _vet_destinations(route: Route, request: Request) -> None:
    guard = request.app.state.guard
    for i, r in enumerate(route.receivers):
        if r.type in ("webhook", "alertmanager"):
            try:
                await guard.vet_url(r.url)
            except BlockedDestination as e:
                raise unprocessable(("body", "receivers", i, "url"), f"destination refused: {e}",
                                    "value_error.destination") from None


@router.get("/subscriptions", response_model=list[Route], dependencies=read)
async def list_subscriptions(request: Request) -> list[Route]:
    """Every subscription; receiver URLs redacted (scheme, host and port shown)."""
    return [redact_route(r) for r in await _store(request).list_routes()]


@router.post("/subscriptions", response_model=Route, status_code=201, dependencies=write,
             responses={**BODY, **CONFLICT})
async def create_subscription(route: Route, request: Request) -> Route:
    problems = restore_secrets(route, None)
    if problems:
        raise unprocessable(("body", "receivers", problems[0][0], "url"), problems[0][1])
    await _vet_destinations(route, request)
    try:
        return redact_route(await _store(request).create_route(route))
    except AlreadyExists as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/subscriptions/{route_id}", response_model=Route, dependencies=read, responses=NOT_FOUND)
async def get_subscription(request: Request, route_id: str = RouteId) -> Route:
    """One subscription; receiver URLs redacted."""
    found = await _store(request).get_route(route_id)
    if found is None:
        raise HTTPException(404, f"no subscription {route_id!r}")
    return redact_route(found)


@router.put("/subscriptions/{route_id}", response_model=Route, dependencies=write, responses=BODY)
async def put_subscription(route: Route, request: Request, route_id: str = RouteId) -> Route:
    """Create or replace. A receiver URL sent back exactly as a read showed it (redacted) keeps the
    stored URL of the receiver with that name."""
    if route.id != route_id:
        raise unprocessable(("body", "id"), "id in the body differs from the path")
    problems = restore_secrets(route, await _store(request).get_route(route_id))
    if problems:
        raise unprocessable(("body", "receivers", problems[0][0], "url"), problems[0][1])
    await _vet_destinations(route, request)
    return redact_route(await _store(request).put_route(route))


@router.delete("/subscriptions/{route_id}", status_code=204, dependencies=write, responses=NOT_FOUND)
async def delete_subscription(request: Request, route_id: str = RouteId) -> Response:
    if not await _store(request).delete_route(route_id):
        raise HTTPException(404, f"no subscription {route_id!r}")
    return Response(status_code=204)


@router.get("/silences", response_model=list[Silence], dependencies=read)
async def list_silences(request: Request,
                        state: Literal["pending", "active", "expired"] | None = Query(None)) -> list[Silence]:
    return await _store(request).list_silences(state, now=time.time())


@router.post("/silences", response_model=Silence, status_code=201, dependencies=write,
             responses={**BODY, **CONFLICT})
async def create_silence(silence: Silence, request: Request) -> Silence:
    try:
        return await _store(request).create_silence(silence)
    except AlreadyExists as exc:
        raise HTTPException(409, str(exc)) from None


@router.delete("/silences/{silence_id}", response_model=Silence, dependencies=write, responses=NOT_FOUND)
async def expire_silence(request: Request, silence_id: str = SilenceId) -> Silence:
    """Ends a silence now (kept, as expired, for the record)."""
    found = await _store(request).expire_silence(silence_id, now=time.time())
    if found is None:
        raise HTTPException(404, f"no silence {silence_id!r}")
    return found
