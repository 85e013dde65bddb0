"""A real local HTTP receiver for delivery tests: aiohttp on 127.0.0.1, a free port, in the test's loop.

It records every request (method, path, headers, body, time) and answers according to a script:
a list of behaviours consumed one per request (the last one repeats): an int status, ``"hang"``
(wait until released or 5 s), ``("redirect", url[, status])``, or ``("body", bytes, content_type)``
/ ``("chunked", bytes, content_type)`` (served with Content-Length / chunked in 64 KiB pieces, with
no length declared).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class LocalReceiver:
    script: list[Any] = field(default_factory=lambda: [200])
    check: Callable[[bytes], None] | None = None  # e.g. schema validation; raising -> 400
    requests: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str = "/hook") -> str:
        return self.base + path

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Seen(request.method, request.path_qs, dict(request.headers), body, time.monotonic()))
        self.arrived.set()
        behaviour = self.script[min(len(self.requests) - 1, len(self.script) - 1)]
        if behaviour == "hang":
            try:
                await asyncio.wait_for(self.release.wait(), 5.0)
            except asyncio.TimeoutError:
                pass
            return web.Response(status=200)
        if isinstance(behaviour, tuple) and behaviour[0] == "redirect":
            status = behaviour[2] if len(behaviour) > 2 else 307
            return web.Response(status=status, headers={"Location": behaviour[1]})
        if isinstance(behaviour, tuple) and behaviour[0] == "body":
            return web.Response(body=behaviour[1], content_type=behaviour[2])
        if isinstance(behaviour, tuple) and behaviour[0] == "chunked":
            resp = web.StreamResponse(headers={"Content-Type": behaviour[2]})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            data = behaviour[1]
            try:
                for i in range(0, len(data), 65536):
                    await resp.write(data[i:i + 65536])
                await resp.write_eof()
            except ConnectionError:  # the client stopped reading
                pass
            return resp
        if self.check is not None:
            try:
                self.check(body)
            except Exception as e:  # noqa: BLE001 - report any validation failure to the client
                return web.Response(status=400, text=str(e)[:500])
        return web.Response(status=int(behaviour), text="ok")

    async def start(self) -> "LocalReceiver":
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_requests(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.005)


async def local_receivers():
    """Fixture body: ``make(script)`` starts a :class:`LocalReceiver`; every one started is stopped at
    teardown. Use as ``name = pytest.fixture(local_receivers)``."""
    started: list[LocalReceiver] = []

    async def make(script=None) -> LocalReceiver:
        r = await LocalReceiver(script or [200]).start()
        started.append(r)
        return r

    yield make
    for r in started:
        await r.stop()
