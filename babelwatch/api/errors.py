"""Error bodies and the responses each operation documents, so the OpenAPI document says every
status the API can answer and what its body looks like (the fuzz test holds the API to it).

Every error body is JSON with ``detail``: a sentence for 4xx/5xx answers, or, for 422, FastAPI's
list of ``{loc, msg, type}`` items -- the API's own 422s (a window that does not parse, an id that
differs from the path, a refused webhook address) use the same list form, so 422 has one shape.
"""
from __future__ import annotations

import math
from typing import Any, Literal, Sequence

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class Error(BaseModel):
    detail: str = Field(description="what went wrong, one sentence")


class StreamLimitError(Error):
    limit: int = Field(description="the cap that was reached")
    open: int = Field(description="live streams open under that cap now")
    scope: Literal["token", "server"] = Field(description="'token': this token's cap; 'server': all tokens'")


def _r(model: type[BaseModel], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "description": description}
    if headers:
        out["headers"] = headers
    return out


_WWW_AUTH = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}

UNAUTHORIZED = {401: _r(Error, "no bearer token, or not a token this API knows", _WWW_AUTH)}
FORBIDDEN = {403: _r(Error, "the token may not do this (a read-scope token writing), or the API has no "
                            "token configured at all")}
AUTH = {**UNAUTHORIZED, **FORBIDDEN}
BODY = {
    400: _r(Error, "the body could not be parsed (e.g. nested too deeply)"),
    413: _r(Error, "the body is larger than BABELWATCH_API_MAX_BODY_BYTES (refused before it is read)"),
}
NOT_FOUND = {404: _r(Error, "no such object")}
CONFLICT = {409: _r(Error, "an object with this id exists")}
TOO_MANY_STREAMS = {429: _r(StreamLimitError, "too many live streams open, for this token or in all",
                            {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}})}
UNAVAILABLE = {503: _r(Error, "the notifier's broadcaster takes no more subscribers")}


def unprocessable(loc: Sequence[str | int], msg: str, type_: str = "value_error") -> RequestValidationError:
    """A 422 shaped like FastAPI's own validation errors (raise it)."""
    return RequestValidationError([{"type": type_, "loc": tuple(loc), "msg": msg}])


def _finite_json(value: Any) -> Any:
    """JSON has no NaN/Infinity: such numbers (e.g. the ``input`` of the very error that refuses
    them) are written as their text, where they would otherwise make the 422 itself a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


async def validation_error_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 (same body), safe for non-finite inputs."""
    return JSONResponse({"detail": _finite_json(jsonable_encoder(exc.errors()))}, status_code=422)
