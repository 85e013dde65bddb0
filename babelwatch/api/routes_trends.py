"""Window series per topic, language and window shape. Reads: a token with scope ``read``."""
from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel

from babelwatch.api.auth import require_reader
from babelwatch.api.errors import AUTH, NOT_FOUND, unprocessable
from workers.alerting.model import MAX_TIMESTAMP
from workers.windows import WindowSpec

router = APIRouter(tags=["trends"], responses=AUTH, dependencies=[Depends(require_reader)])


class TopicInfo(BaseModel):
    topic: str
    languages: list[str]


class Point(BaseModel):
    start: int
    count: int
    negative: int
    neutral: int
    positive: int
    sentiment_mean: float | None


class Series(BaseModel):
    topic: str
    lang: str
    window: str
    points: list[Point]


@router.get("/topics", response_model=list[TopicInfo])
async def topics(request: Request) -> list[TopicInfo]:
    store = request.app.state.windows
    return [TopicInfo(topic=t, languages=await store.langs(t)) for t in await store.topics()]


@router.get("/trends", response_model=Series, responses={404: {**NOT_FOUND[404], "description": "window not kept"}})
async def trends(
    request: Request,
    topic: str = Query(min_length=1, max_length=200),
    lang: str = Query("*", max_length=35, description="ISO 639-1 code or * for all languages"),
    window: str | None = Query(None, max_length=32, description="window shape: SIZE or SIZE/HOP; default the primary"),
    points: int = Query(60, ge=1, le=1000),
    # finite and within datetime's range: inf/nan used to reach int() and answer 500
    end: float | None = Query(None, ge=0, le=MAX_TIMESTAMP, allow_inf_nan=False,
                              description="epoch seconds; default now"),
) -> Series:
    store = request.app.state.windows
    spec = kept_window(store, window)
    rows = await store.series(topic, lang, end if end is not None else time.time(), points, spec)
    out = []
    for start, h in rows:
        n = int(h.get("count", 0))
        out.append(Point(
            start=start, count=n, negative=int(h.get("negative", 0)), neutral=int(h.get("neutral", 0)),
            positive=int(h.get("positive", 0)), sentiment_mean=(h.get("sentiment_sum", 0.0) / n) if n else None,
        ))
    return Series(topic=topic, lang=lang, window=spec.name, points=out)


def kept_window(store, window: str | None) -> WindowSpec:
    """The window shape a query names (default: the primary one): 422 if malformed, 404 if not kept."""
    if window is None:
        return store.specs[0]
    try:
        spec = WindowSpec.parse(window)
    except ValueError as exc:
        raise unprocessable(("query", "window"), str(exc)) from None
    if spec not in store.specs:
        raise HTTPException(404, f"window {window} is not kept; kept: {[s.name for s in store.specs]}")
    return spec
