"""The dashboard: the page at ``/`` (static files, no token: they hold no data), ``/docs`` served
from the ``swagger-ui-bundle-v2`` package (offline, no CDN), and the two reads the page needs
beyond the trends and alerts routes: ``/v1/overview`` (every topic x language series of one window
shape, the stream's counters) and ``/v1/samples`` (the events an alert cites). Reads need a token
with scope ``read``; the page sends it as a bearer header (it keeps it in sessionStorage, never in
a URL).
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from babelwatch.api.auth import require_reader
from babelwatch.api.errors import AUTH, NOT_FOUND
from babelwatch.api.routes_trends import kept_window

STATIC = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/static/"
DOCS_ASSETS_PREFIX = "/docs/assets/"
# the page loads only its own files; thumbnails come inline (data:) because an <img> cannot send a token
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

page_router = APIRouter(include_in_schema=False)
router = APIRouter(tags=["dashboard"], responses=AUTH, dependencies=[Depends(require_reader)])


@page_router.api_route("/", methods=["GET", "HEAD"])
async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html",
                        headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache",
                                 "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})


@page_router.get("/docs")
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="babelwatch API",
                               swagger_js_url=DOCS_ASSETS_PREFIX + "swagger-ui-bundle.js",
                               swagger_css_url=DOCS_ASSETS_PREFIX + "swagger-ui.css",
                               swagger_favicon_url=DOCS_ASSETS_PREFIX + "favicon-32x32.png")


def mount_files(app: FastAPI) -> None:
    """The page's files and Swagger UI's, from the installed package."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=STATIC), name="static")
    app.mount(DOCS_ASSETS_PREFIX.rstrip("/"), StaticFiles(directory=swagger_ui_path), name="docs-assets")


class SeriesPoint(BaseModel):
    start: int
    count: int
    sentiment_mean: float | None


class LangSeries(BaseModel):
    topic: str
    lang: str
    points: list[SeriesPoint]


class Overview(BaseModel):
    window: str
    windows: list[str]
    now: float
    series: list[LangSeries]
    stats: dict[str, int]
    dead_letters: dict[str, int] | None  # by reason; None where this process does not read them


class SampleEvent(BaseModel):
    id: str
    topic: str
    source: str
    lang: str | None
    text: str
    ts: float | None
    label: str | None
    sentiment: float | None
    has_image: bool
    thumbnail: str | None


@router.get("/overview", response_model=Overview)
async def overview(
    request: Request,
    window: str | None = Query(None, max_length=32, description="window shape; default the primary"),
    points: int = Query(30, ge=1, le=240),
    max_series: int = Query(200, ge=1, le=1000, description="at most this many topic x language series"),
) -> Overview:
    """Every topic x language series (``*`` = all languages) of one window shape, the stream's
    counters (late, redelivered_skipped, ...) and, where the notifier runs here, dead letters by reason."""
    store = request.app.state.windows
    spec = kept_window(store, window)
    pairs: list[tuple[str, str]] = []
    for t in await store.topics():  # stops asking once max_series is reached: one call per topic used
        pairs += [(t, lang) for lang in await store.langs(t)]
        if len(pairs) >= max_series:
            break
    pairs = pairs[:max_series]
    now = time.time()
    rows = await asyncio.gather(*(store.series(t, lang, now, points, spec) for t, lang in pairs))
    series = []
    for (t, lang), row in zip(pairs, rows):
        pts = []
        for start, h in row:
            n = int(h.get("count", 0))
            mean = h.get("sentiment_sum", 0.0) / n if n else None
            pts.append(SeriesPoint(start=start, count=n, sentiment_mean=mean))
        series.append(LangSeries(topic=t, lang=lang, points=pts))
    raw = await request.app.state.redis.hgetall(store.keys.stats)
    stats = {(k.decode() if isinstance(k, bytes) else k): int(float(v)) for k, v in raw.items()}
    sampler = request.app.state.sampler
    return Overview(window=spec.name, windows=[s.name for s in store.specs], now=now, series=series, stats=stats,
                    dead_letters=dict(sampler.dead_letters) if sampler is not None else None)


@router.get("/samples", response_model=list[SampleEvent], responses=NOT_FOUND)
async def samples(request: Request, id: list[str] = Query(..., max_length=20)) -> list[SampleEvent]:
    """Recent events by id (those an alert's ``sample_events`` cite), with a thumbnail of their image;
    ids no longer (or never) kept are left out. Served by ``babelwatch notify``."""
    sampler = request.app.state.sampler
    if sampler is None:
        raise HTTPException(404, "no recent events in this process: they are kept by `babelwatch notify`")
    return [SampleEvent(**s) for s in await sampler.cache.aget([i[:200] for i in id])]
