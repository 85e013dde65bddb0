"""The API's front door, an ASGI middleware: the bearer token, then the body size, before any body
byte is read or parsed.

FastAPI reads and parses a request body before it solves an endpoint's dependencies, so a token
check written as a dependency comes too late: a stranger's 100 MB POST would be read into memory
and parsed first. Here, in order:

1. open paths (``/health``, ``/ready``, the OpenAPI document and its pages, the dashboard's page
   and static files) need no token; every
   other request needs one with scope ``read`` (GET, HEAD, OPTIONS) or ``write`` (anything else):
   401 / 403 answered from the headers alone;
2. a ``Content-Length`` over ``max_body`` is answered 413 from the headers alone;
3. a method the path does not serve gets 405 with an ``Allow`` header naming every method it does
   serve (Starlette would name only those of the first route matching the path);
4. a body is then read here, at most ``max_body`` bytes (a chunked body that grows past it gets 413
   as soon as it does), and handed to the app from memory.

Answers given without reading the whole body carry ``Connection: close``: the server closes the
connection instead of reading (or waiting for) the rest. Until then uvicorn's flow control stops
reading the socket once 64 KiB are buffered, so an unread body costs no memory here.
"""
from __future__ import annotations

import json
import logging
from typing import Callable, Iterable

from babelwatch.api.auth import PRINCIPAL_KEY, READ, WRITE, AuthError, TokenStore, authorize

log = logging.getLogger("babelwatch.api.guard")

OPEN_PATHS = frozenset({"/health", "/live", "/ready", "/metrics",  # probes and Prometheus: no data in them
                        "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# the dashboard page and its files, Swagger UI's files: static, no data in them
OPEN_PREFIXES = ("/static/", "/docs/assets/")
OPEN_PAGES = frozenset({"/"})


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path in OPEN_PAGES or (path.startswith(OPEN_PREFIXES) and ".." not in path)


class BodyTooLarge(Exception):
    pass


class ApiGuard:
    def __init__(self, app, tokens: TokenStore, max_body: int,
                 routes: Callable[[], Iterable] | None = None) -> None:
        self.app = app
        self.tokens = tokens
        self.max_body = max_body
        self.routes = routes or (lambda: ())
        self._table: list[tuple] | None = None  # (path regex, methods), built at the first request

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        te = headers.get("transfer-encoding")
        cl_text = headers.get("content-length")
        has_body = te is not None or (cl_text is not None and cl_text.strip() not in ("", "0"))

        if not is_open(scope["path"]):
            scope_needed = READ if scope["method"] in READ_METHODS else WRITE
            try:
                scope[PRINCIPAL_KEY] = authorize(self.tokens, headers.get("authorization"), scope_needed)
            except AuthError as e:
                extra = [(b"www-authenticate", b"Bearer")] if e.status == 401 else []
                await _answer(send, e.status, e.detail, extra, close=has_body)
                return

        allowed = self._methods(scope["path"])
        if allowed and scope["method"] not in allowed:
            await _answer(send, 405, "Method Not Allowed", [(b"allow", ", ".join(sorted(allowed)).encode())],
                          close=has_body)
            return

        if not has_body:
            await self.app(scope, receive, send)
            return
        if cl_text is not None:
            try:
                declared = int(cl_text)
            except ValueError:
                await _answer(send, 400, "invalid Content-Length", close=True)
                return
            if declared > self.max_body:
                await _answer(send, 413, self._too_large(), close=True)
                return
        try:
            body = await self._read_body(receive)
        except BodyTooLarge:
            await _answer(send, 413, self._too_large(), close=True)
            return
        if body is None:  # the client went away
            return
        await self.app(scope, _replay(body, receive), send)

    def _methods(self, path: str) -> set[str]:
        if self._table is None:
            self._table = [(r.path_regex, frozenset(r.methods)) for r in self.routes()
                           if getattr(r, "path_regex", None) is not None and getattr(r, "methods", None)]
        out: set[str] = set()
        for regex, methods in self._table:
            if regex.match(path):
                out |= methods
        return out

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body} bytes (BABELWATCH_API_MAX_BODY_BYTES)"

    async def _read_body(self, receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _headers(scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers", ()):
        name = k.decode("latin-1").lower()
        if name not in out:  # the first of repeated headers
            out[name] = v.decode("latin-1")
    return out


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: http.disconnect when the client goes

    return replay


async def _answer(send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None,
                  close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               *(extra or [])]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
