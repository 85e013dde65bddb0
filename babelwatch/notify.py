"""``babelwatch notify``: the notifier and the HTTP API in one process, one event loop.

They belong together: ``GET /v1/alerts/stream`` serves the notifier's in-process SSE broadcaster.
The notifier starts with the app (its lifespan) and stops with it; SIGINT/SIGTERM stop both.
"""
from __future__ import annotations

import asyncio
import logging

from contracts.settings import Settings

log = logging.getLogger("babelwatch.notify")


async def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from babelwatch.api.app import create_app
    from stream.notifier import Notifier

    host = host or settings.api_host
    port = port or settings.api_port
    app = create_app(settings, notifier=Notifier(settings))
    # open SSE streams never end by themselves: give them a moment, then shut down anyway
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=2,
                            log_config=None)  # uvicorn logs through babelwatch.logs
    server = uvicorn.Server(config)

    async def announce() -> None:
        while not server.started and not server.should_exit:
            await asyncio.sleep(0.05)
        if server.started:
            log.info("API on http://%s:%d (live alerts: /v1/alerts/stream, docs: /docs)", host, port)

    task = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        task.cancel()


def run(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    asyncio.run(serve(settings, host, port))
    return 0
