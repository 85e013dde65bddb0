"""Alerts fired, newest first."""
from __future__ import annotations

from fastapi import APIRouter, Query, Request

from babelwatch.schema import Alert

router = APIRouter(tags=["alerts"])


@router.get("/alerts", response_model=list[Alert])
async def alerts(
    request: Request,
    topic: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
) -> list[Alert]:
    found = await request.app.state.alerts.history(limit if topic is None else 1000)
    if topic is not None:
        found = [a for a in found if a.topic == topic][:limit]
    return found
