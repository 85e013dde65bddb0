"""Alerts: notifications so far (newest first), the alerts active now, and a live stream (SSE).

Every item is an alert instance: its labels (``topic``, ``language``, ``detector``, ``window``,
``severity``, ``stage``) are its identity, ``fingerprint`` is derived from them, ``state`` is where
it is in its lifecycle and ``annotations`` describe the latest value (``summary``, ``value``,
``baseline``, ``score``, ``threshold``, ``window_start``, ``sample_events``).

Reads: a token with scope ``read``. Live streams are capped per token and per process
(babelwatch.api.streams): past a cap the answer is 429 with the cap in the body. The live stream is
served only where the app hosts the notifier (``babelwatch notify``): elsewhere the route is left out
of the app and its OpenAPI document, and a hidden stand-in answers 404 saying where to go.
"""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from babelwatch.api.auth import Principal, require_reader
from babelwatch.api.errors import AUTH, TOO_MANY_STREAMS, UNAVAILABLE, StreamLimitError
from babelwatch.api.streams import StreamRefused
from workers.alerting.model import AlertInstance
from workers.alerting.sinks.sse import ALL_CHANNELS, sse_stream
from workers.notifier import RAW_CHANNEL

router = APIRouter(tags=["alerts"], responses=AUTH, dependencies=[Depends(require_reader)])
stream_router = APIRouter(tags=["alerts"], responses=AUTH, dependencies=[Depends(require_reader)])
no_stream_router = APIRouter(dependencies=[Depends(require_reader)])


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


@stream_router.get(
    "/alerts/stream",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "Server-Sent Events"},
               **TOO_MANY_STREAMS, **UNAVAILABLE},
)
async def alert_stream(
    request: Request,
    principal: Principal = Depends(require_reader),
    channel: str | None = Query(
        None, max_length=64,
        description=f"unset: every alert transition (the '{RAW_CHANNEL}' channel: CloudEvents of the alerts "
                    "topic, before subscriptions and silences); NAME: notifications of subscriptions with an "
                    f"SSE receiver on channel NAME; '{ALL_CHANNELS}': everything",
    ),
    heartbeat_s: float = Query(15.0, ge=0.5, le=300, allow_inf_nan=False),
) -> StreamingResponse:
    """Live alerts as Server-Sent Events (``event:`` = CloudEvent type, ``data:`` = the CloudEvent
    JSON, ``id:`` = its id). A client that falls behind loses its oldest events and gets a ``gap``
    event saying how many; it never slows the notifier or other clients."""
    broadcaster = request.app.state.broadcaster
    slots = request.app.state.stream_slots
    try:
        slots.acquire(principal.name)
    except StreamRefused as e:
        body = StreamLimitError(detail=e.detail, limit=e.limit, open=e.open, scope=e.scope)  # type: ignore[arg-type]
        return JSONResponse(body.model_dump(), status_code=429, headers={"Retry-After": "5"})
    try:
        sub = broadcaster.subscribe(channel or RAW_CHANNEL)
    except RuntimeError as exc:
        slots.release(principal.name)
        raise HTTPException(503, str(exc)) from None

    async def body():
        try:
            async for chunk in sse_stream(sub, heartbeat_s):
                yield chunk
        finally:
            sub.close()

    def done() -> None:
        sub.close()
        slots.release(principal.name)

    return _SlotStream(body(), done, media_type="text/event-stream",
                       headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@no_stream_router.get("/alerts/stream", include_in_schema=False)
async def no_alert_stream() -> None:
    raise HTTPException(404, "no live stream in this process: it is served by `babelwatch notify`")


class _SlotStream(StreamingResponse):
    """Gives the stream's slot back however the response ends, even if its body never started
    (a generator's ``finally`` alone would not run then)."""

    def __init__(self, content, on_done, **kw) -> None:
        super().__init__(content, **kw)
        self._on_done = on_done

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            on_done, self._on_done = self._on_done, None
            if on_done is not None:
                on_done()
