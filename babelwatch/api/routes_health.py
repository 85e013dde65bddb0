"""Liveness and readiness: open (no token), for probes and load balancers. They say nothing about
the data; /ready names only the kind of Redis failure, never its address or message."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "unavailable"]
    redis: str | None = None


@router.get("/health", response_model=Health)
async def health() -> Health:
    return Health(status="ok")


@router.get("/ready", response_model=Ready,
            responses={503: {"model": Ready, "description": "Redis does not answer"}})
async def ready(request: Request, response: Response) -> Ready:
    try:
        await request.app.state.redis.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        response.status_code = 503
        return Ready(status="unavailable", redis=type(exc).__name__)
    return Ready(status="ready")
