"""Subscriptions (alert routes) and silences: CRUD stored in Redis. Reads are open, writes need
the bearer token. Bodies are validated by the alerting models (clear 422 on bad input)."""
from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from babelwatch.api.auth import require_writer
from workers.alerting.model import Route, Silence
from workers.alerting.store import AlreadyExists

router = APIRouter(tags=["subscriptions"])


def _store(request: Request):
    return request.app.state.alert_config


@router.get("/subscriptions", response_model=list[Route])
async def list_subscriptions(request: Request) -> list[Route]:
    return await _store(request).list_routes()


@router.post("/subscriptions", response_model=Route, status_code=201, dependencies=[Depends(require_writer)])
async def create_subscription(route: Route, request: Request) -> Route:
    try:
        return await _store(request).create_route(route)
    except AlreadyExists as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/subscriptions/{route_id}", response_model=Route)
async def get_subscription(route_id: str, request: Request) -> Route:
    found = await _store(request).get_route(route_id)
    if found is None:
        raise HTTPException(404, f"no subscription {route_id!r}")
    return found


@router.put("/subscriptions/{route_id}", response_model=Route, dependencies=[Depends(require_writer)])
async def put_subscription(route_id: str, route: Route, request: Request) -> Route:
    if route.id != route_id:
        raise HTTPException(422, "id in the body differs from the path")
    return await _store(request).put_route(route)


@router.delete("/subscriptions/{route_id}", status_code=204, dependencies=[Depends(require_writer)])
async def delete_subscription(route_id: str, request: Request) -> Response:
    if not await _store(request).delete_route(route_id):
        raise HTTPException(404, f"no subscription {route_id!r}")
    return Response(status_code=204)


@router.get("/silences", response_model=list[Silence])
async def list_silences(request: Request, state: str | None = None) -> list[Silence]:
    if state not in (None, "pending", "active", "expired"):
        raise HTTPException(422, "state must be pending, active or expired")
    return await _store(request).list_silences(state, now=time.time())  # type: ignore[arg-type]


@router.post("/silences", response_model=Silence, status_code=201, dependencies=[Depends(require_writer)])
async def create_silence(silence: Silence, request: Request) -> Silence:
    try:
        return await _store(request).create_silence(silence)
    except AlreadyExists as exc:
        raise HTTPException(409, str(exc)) from None


@router.delete("/silences/{silence_id}", response_model=Silence, dependencies=[Depends(require_writer)])
async def expire_silence(silence_id: str, request: Request) -> Silence:
    """Ends a silence now (kept, as expired, for the record)."""
    found = await _store(request).expire_silence(silence_id, now=time.time())
    if found is None:
        raise HTTPException(404, f"no silence {silence_id!r}")
    return found
