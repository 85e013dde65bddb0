"""Every Redis client built from Settings, in one place: the URL (``rediss://`` for TLS), the CA
and client certificate, and the ACL user whose password may live in a file that Kubernetes
mounts (read again at each new connection, so a rotated Secret needs no restart). Security
settings and runbook: deploy/README.md."""
from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.credentials import CredentialProvider

from contracts.settings import Settings


class SettingsCredentials(CredentialProvider):
    """The ACL user and password of Settings; redis-py asks at every new connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def get_credentials(self) -> tuple[str] | tuple[str, str]:
        password = self.settings.redis_secret() or ""
        if self.settings.redis_username:
            return self.settings.redis_username, password
        return (password,)

    def __repr__(self) -> str:  # never the password
        return f"<SettingsCredentials user={self.settings.redis_username!r}>"


def redis_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection arguments beyond the URL: credentials when Settings hold a user or password (the
    URL's own ``user:password@`` otherwise), TLS files only for ``rediss://`` (redis-py refuses
    ``ssl_*`` on a plain connection)."""
    kw: dict[str, Any] = {}
    if settings.redis_username or settings.redis_password or settings.redis_password_file:
        kw["credential_provider"] = SettingsCredentials(settings)
    if settings.redis_url.startswith("rediss://"):
        kw.update(ssl_cert_reqs="required", ssl_check_hostname=settings.redis_ssl_check_hostname,
                  ssl_ca_certs=_path(settings.redis_ssl_cafile), ssl_certfile=_path(settings.redis_ssl_certfile),
                  ssl_keyfile=_path(settings.redis_ssl_keyfile))
    return kw


def async_redis(settings: Settings, **kw: Any) -> aioredis.Redis:
    """The asyncio client (workers, notifier, API)."""
    return aioredis.from_url(settings.redis_url, **redis_kwargs(settings), **kw)


def sync_redis(settings: Settings, **kw: Any) -> redis.Redis:
    """The blocking client (CLI, tools)."""
    return redis.Redis.from_url(settings.redis_url, **redis_kwargs(settings), **kw)


def _path(p) -> str | None:
    return str(p) if p is not None else None
