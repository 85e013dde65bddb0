"""Routes (subscriptions) and silences in Redis, pydantic-validated JSON; for the HTTP API and CLI.

Keys (``contracts.keys.RedisKeys``): ``routes`` and ``silences`` -- hashes id -> JSON;
``config_version`` -- bumped in the same MULTI as every change, so readers (the router) reload only
when it moved.
"""
from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from contracts.keys import RedisKeys

from workers.alerting.model import Route, Silence, SilenceState

log = logging.getLogger("babelwatch.alerting.store")


class AlreadyExists(Exception):
    pass


class AlertConfigStore:
    def __init__(self, redis, prefix: str = "bw") -> None:
        self.redis = redis
        keys = RedisKeys(prefix)
        self.routes_key = keys.routes
        self.silences_key = keys.silences
        self.version_key = keys.config_version

    async def version(self) -> int:
        return int(await self.redis.get(self.version_key) or 0)

    # ------------------------------------------------------------------------------------- routes

    async def create_route(self, route: Route | dict[str, Any]) -> Route:
        """Insert; :class:`AlreadyExists` when the id is taken."""
        r = route if isinstance(route, Route) else Route.model_validate(route)
        if not await self._write(self.routes_key, r.id, r.model_dump_json(), nx=True):
            raise AlreadyExists(f"route {r.id!r} exists")
        return r

    async def put_route(self, route: Route | dict[str, Any]) -> Route:
        """Insert or replace."""
        r = route if isinstance(route, Route) else Route.model_validate(route)
        await self._write(self.routes_key, r.id, r.model_dump_json())
        return r

    async def get_route(self, route_id: str) -> Route | None:
        raw = await self.redis.hget(self.routes_key, route_id)
        return self._load(Route, route_id, raw)

    async def list_routes(self) -> list[Route]:
        return self._load_all(Route, await self.redis.hgetall(self.routes_key))

    async def delete_route(self, route_id: str) -> bool:
        return await self._delete(self.routes_key, route_id)

    # ----------------------------------------------------------------------------------- silences

    async def create_silence(self, silence: Silence | dict[str, Any]) -> Silence:
        s = silence if isinstance(silence, Silence) else Silence.model_validate(silence)
        if not await self._write(self.silences_key, s.id, s.model_dump_json(), nx=True):
            raise AlreadyExists(f"silence {s.id!r} exists")
        return s

    async def put_silence(self, silence: Silence | dict[str, Any]) -> Silence:
        s = silence if isinstance(silence, Silence) else Silence.model_validate(silence)
        await self._write(self.silences_key, s.id, s.model_dump_json())
        return s

    async def get_silence(self, silence_id: str) -> Silence | None:
        return self._load(Silence, silence_id, await self.redis.hget(self.silences_key, silence_id))

    async def list_silences(self, state: SilenceState | None = None, now: float | None = None) -> list[Silence]:
        out = self._load_all(Silence, await self.redis.hgetall(self.silences_key))
        if state is not None:
            if now is None:
                raise ValueError("filtering by state needs now")
            out = [s for s in out if s.state(now) == state]
        return out

    async def expire_silence(self, silence_id: str, now: float) -> Silence | None:
        """End a silence now (Alertmanager's "expire"); a silence that has not started is deleted."""
        s = await self.get_silence(silence_id)
        if s is None:
            return None
        if s.state(now) == "pending":
            await self.delete_silence(silence_id)
            return s
        if s.state(now) == "active":
            s = s.model_copy(update={"ends_at": now})
            await self._write(self.silences_key, s.id, s.model_dump_json())
        return s

    async def delete_silence(self, silence_id: str) -> bool:
        return await self._delete(self.silences_key, silence_id)

    async def purge_expired_silences(self, now: float, retention_s: float = 5 * 86_400) -> int:
        """Delete silences that ended more than ``retention_s`` ago."""
        old = [s.id for s in await self.list_silences() if s.ends_at < now - retention_s]
        for sid in old:
            await self.delete_silence(sid)
        return len(old)

    # ------------------------------------------------------------------------------------ helpers

    async def _write(self, key: str, field: str, value: str, nx: bool = False) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        (pipe.hsetnx if nx else pipe.hset)(key, field, value)
        pipe.incr(self.version_key)
        written, _ = await pipe.execute()
        return bool(written) or not nx

    async def _delete(self, key: str, field: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(key, field)
        pipe.incr(self.version_key)
        deleted, _ = await pipe.execute()
        return bool(deleted)

    @staticmethod
    def _load(model, ident: str, raw) -> Any:
        if raw is None:
            return None
        try:
            return model.model_validate_json(raw)
        except ValidationError as e:
            log.warning("stored %s %r is invalid, ignored: %s", model.__name__, ident, e.errors()[:1])
            return None

    def _load_all(self, model, raw: dict) -> list:
        items = [self._load(model, k.decode() if isinstance(k, bytes) else k, v) for k, v in raw.items()]
        return sorted((i for i in items if i is not None), key=lambda i: i.id)
