"""Bearer-token check for writes. No token configured means writes are refused, never open."""
from __future__ import annotations

import hmac

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False)


async def require_writer(
    request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    token = request.app.state.settings.api_token
    if token is None:
        raise HTTPException(403, "writes are disabled: set BABELWATCH_API_TOKEN")
    if creds is None or not hmac.compare_digest(creds.credentials.encode(), token.get_secret_value().encode()):
        raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
