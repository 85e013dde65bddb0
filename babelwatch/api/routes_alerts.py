"""Alerts: notifications so far (newest first), the alerts active now, and a live stream (SSE).

Every item is an alert instance: its labels (``topic``, ``language``, ``detector``, ``window``,
``severity``, ``stage``) are its identity, ``fingerprint`` is derived from them, ``state`` is where
it is in its lifecycle and ``annotations`` describe the latest value (``summary``, ``value``,
``baseline``, ``score``, ``threshold``, ``window_start``, ``sample_events``).
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from workers.alerting.model import AlertInstance
from workers.alerting.sinks.sse import ALL_CHANNELS, sse_stream
from workers.notifier import RAW_CHANNEL

router = APIRouter(tags=["alerts"])


@router.get("/alerts", response_model=list[AlertInstance])
async def alerts(
    request: Request,
    topic: str | None = Query(None, max_length=200),
    limit: int = Query(100, ge=1, le=1000),
) -> list[AlertInstance]:
    """Notifications (firing, repeated, resolved) as the workers sent them, newest first."""
    found = await request.app.state.alerts.history(limit if topic is None else 1000)
    if topic is not None:
        found = [a for a in found if a.labels.get("topic") == topic][:limit]
    return found


@router.get("/alerts/active", response_model=list[AlertInstance])
async def active_alerts(
    request: Request,
    topic: str | None = Query(None, max_length=200),
    state: Literal["pending", "firing"] | None = None,
) -> list[AlertInstance]:
    """Alerts pending or firing now (the lifecycle's state in Redis), most recently active first."""
    found = await request.app.state.alert_state.active()
    found = [a for a in found if (topic is None or a.labels.get("topic") == topic)
             and (state is None or a.state == state)]
    return sorted(found, key=lambda a: -(a.last_active_at or 0.0))


@router.get(
    "/alerts/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
               503: {"description": "no notifier in this process"}},
)
async def alert_stream(
    request: Request,
    channel: str | None = Query(
        None, max_length=64,
        description=f"unset: every alert transition (the '{RAW_CHANNEL}' channel: CloudEvents of the alerts "
                    "topic, before subscriptions and silences); NAME: notifications of subscriptions with an "
                    f"SSE receiver on channel NAME; '{ALL_CHANNELS}': everything",
    ),
    heartbeat_s: float = Query(15.0, ge=0.5, le=300),
) -> StreamingResponse:
    """Live alerts as Server-Sent Events (``event:`` = CloudEvent type, ``data:`` = the CloudEvent
    JSON, ``id:`` = its id). A client that falls behind loses its oldest events and gets a ``gap``
    event saying how many; it never slows the notifier or other clients."""
    broadcaster = request.app.state.broadcaster
    if broadcaster is None:
        raise HTTPException(503, "no notifier in this process: the live stream is served by `babelwatch notify`")
    try:
        sub = broadcaster.subscribe(channel or RAW_CHANNEL)
    except RuntimeError as exc:
        raise HTTPException(503, str(exc)) from None

    async def body():
        try:
            async for chunk in sse_stream(sub, heartbeat_s):
                yield chunk
        finally:
            sub.close()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
