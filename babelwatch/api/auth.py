"""Bearer tokens with scopes, several at once, rotated without a restart.

Tokens come from two places:

* ``BABELWATCH_API_TOKEN`` (settings ``api_token``): one token with scope ``write``, named
  ``default`` (what the API had before scopes; the CLI sends it);
* ``BABELWATCH_API_TOKENS_FILE`` (settings ``api_tokens_file``): a text file, one token per line::

      # NAME   SCOPE  TOKEN
      grafana  read   <the token itself, 16 to 4096 characters>
      ops      write  sha256:<64 hex digits: the SHA-256 of the token>

  ``SCOPE`` is ``read`` (GET) or ``write`` (everything: reads too). ``TOKEN`` is the token, or
  ``sha256:`` and the hex SHA-256 of it, so the file need not hold the secret itself. Names are
  ``[A-Za-z0-9_.-]{1,64}``, unique; they name the token in logs and in per-token limits (live
  streams), never the token itself. A line starting with ``#`` is a comment. A line that does not parse is skipped and
  logged (its line number and why, not its content).

  The file is re-read when it changes (its mtime, size or inode: checked on every request, a
  ``stat``), so adding, removing or rotating a token takes effect at the next request. Replace it
  atomically (write a new file, rename it over the old one; a Kubernetes Secret volume does that);
  a file that vanishes leaves only ``BABELWATCH_API_TOKEN``.

No token configured at all means every request but ``/health``, ``/ready`` and the OpenAPI document
is refused (403): the API is never open by default. Tokens are compared as SHA-256 digests with
:func:`hmac.compare_digest`, against every entry, so the time taken says nothing about which token
or how much of one matched.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

log = logging.getLogger("babelwatch.api.auth")

READ, WRITE = "read", "write"
SCOPES = {READ: frozenset({READ}), WRITE: frozenset({READ, WRITE})}
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 4096
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}\Z")
_SHA256 = re.compile(r"^sha256:([0-9a-fA-F]{64})\Z")
PRINCIPAL_KEY = "babelwatch.principal"  # where the guard middleware leaves the caller in the ASGI scope


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return scope in self.scopes


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def parse_tokens(text: str, source: str = "tokens file") -> list[tuple[bytes, Principal]]:
    """The entries of a tokens file (module doc); bad lines are logged by number and skipped."""
    out: list[tuple[bytes, Principal]] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):  # whole-line comments only: a token may hold '#'
            continue
        parts = line.split()
        if len(parts) != 3:
            log.warning("%s line %d skipped: expected 'NAME SCOPE TOKEN'", source, n)
            continue
        name, scope, token = parts
        if not _NAME.match(name):
            log.warning("%s line %d skipped: name must match [A-Za-z0-9_.-]{1,64}", source, n)
            continue
        if scope not in SCOPES:
            log.warning("%s line %d skipped: scope must be 'read' or 'write'", source, n)
            continue
        hashed = _SHA256.match(token)
        if hashed:
            d = bytes.fromhex(hashed.group(1))
        elif MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
            d = digest(token)
        else:
            log.warning("%s line %d skipped: a token has %d to %d characters (or is sha256:HEX)",
                        source, n, MIN_TOKEN_CHARS, MAX_TOKEN_CHARS)
            continue
        if name in names or d in digests:
            log.warning("%s line %d skipped: name %r or its token is already listed", source, n, name)
            continue
        names.add(name)
        digests.add(d)
        out.append((d, Principal(name, SCOPES[scope])))
    return out


class TokenStore:
    def __init__(self, env_token: SecretStr | None = None, tokens_file: Path | str | None = None) -> None:
        self._env = ([(digest(env_token.get_secret_value()), Principal("default", SCOPES[WRITE]))]
                     if env_token is not None and env_token.get_secret_value() else [])
        self.tokens_file = Path(tokens_file) if tokens_file else None
        self._file_entries: list[tuple[bytes, Principal]] = []
        self._signature: tuple | None = ()  # () = never read

    @classmethod
    def from_settings(cls, settings) -> "TokenStore":
        return cls(settings.api_token, settings.api_tokens_file)

    def _refresh(self) -> None:
        if self.tokens_file is None:
            return
        try:
            st = os.stat(self.tokens_file)
            sig: tuple | None = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
        except OSError:
            sig = None
        if sig == self._signature:
            return
        first = self._signature == ()
        self._signature = sig
        if sig is None:
            self._file_entries = []
            log.warning("API tokens file %s is missing or unreadable: only BABELWATCH_API_TOKEN applies",
                        self.tokens_file)
            return
        try:
            text = self.tokens_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            self._file_entries = []
            log.warning("API tokens file %s cannot be read (%s): only BABELWATCH_API_TOKEN applies",
                        self.tokens_file, type(e).__name__)
            return
        self._file_entries = parse_tokens(text, str(self.tokens_file))
        log.info("API tokens %s from %s: %s", "loaded" if first else "reloaded", self.tokens_file,
                 ", ".join(f"{p.name}({'write' if p.may(WRITE) else 'read'})" for _, p in self._file_entries)
                 or "none")

    @property
    def configured(self) -> bool:
        self._refresh()
        return bool(self._env or self._file_entries)

    def authenticate(self, token: str | None) -> Principal | None:
        """The token's principal, or None. Every entry is compared (no early exit)."""
        self._refresh()
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        d = digest(token)
        found = None
        for known, principal in self._env + self._file_entries:
            if hmac.compare_digest(known, d) and found is None:
                found = principal
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class AuthError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def authorize(tokens: TokenStore, authorization: str | None, scope: str) -> Principal:
    """The caller allowed ``scope``, else :class:`AuthError` (401 unknown caller, 403 not allowed)."""
    if not tokens.configured:
        raise AuthError(403, "the API is closed: no token is configured (set BABELWATCH_API_TOKEN or "
                             "BABELWATCH_API_TOKENS_FILE)")
    principal = tokens.authenticate(bearer_token(authorization))
    if principal is None:
        raise AuthError(401, "missing or wrong bearer token")
    if not principal.may(scope):
        raise AuthError(403, f"token {principal.name!r} has scope 'read': it may not write")
    return principal


# --- FastAPI dependencies: they put the bearer scheme in the OpenAPI document and check again what the
# guard middleware (babelwatch.api.guard) already enforced before the body was read

_bearer = HTTPBearer(auto_error=False, description="a token from BABELWATCH_API_TOKEN or BABELWATCH_API_TOKENS_FILE")


def _dependency(scope: str):
    async def check(request: Request,
                    creds: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Principal:
        principal = request.scope.get(PRINCIPAL_KEY)
        if isinstance(principal, Principal) and principal.may(scope):
            return principal
        try:
            principal = authorize(request.app.state.tokens, request.headers.get("authorization"), scope)
        except AuthError as e:
            headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
            raise HTTPException(e.status, e.detail, headers=headers) from None
        request.scope[PRINCIPAL_KEY] = principal
        return principal

    check.__name__ = f"require_{scope}"
    return check


require_reader = _dependency(READ)
require_writer = _dependency(WRITE)
