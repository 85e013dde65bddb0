"""Liveness and readiness."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request, response: Response) -> dict:
    try:
        await request.app.state.redis.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        response.status_code = 503
        return {"status": "unavailable", "redis": str(exc)}
    return {"status": "ready"}
