"""Raw Kafka payload -> Event, or a DeadLetter that says why not. Never raises on bad input."""
from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from babelwatch.schema import DeadLetter, Event, Limits


@dataclass(frozen=True)
class Origin:
    """Where a payload came from, so a dead letter can point back at it."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


class EventValidator:
    def __init__(self, limits: Limits, max_event_bytes: int = 2_000_000) -> None:
        self.limits = limits
        self.max_event_bytes = max_event_bytes
        self._context = {"limits": limits}

    def validate(self, raw: bytes | str, origin: Origin = Origin()) -> Event | DeadLetter:
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "replace")
        if len(raw) > self.max_event_bytes:
            return self.dead(
                raw, origin, "too_large", [{"msg": f"payload of {len(raw)} bytes > {self.max_event_bytes}"}]
            )
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return self.dead(raw, origin, "not_json", [{"msg": str(exc)}])
        if not isinstance(obj, dict):
            return self.dead(raw, origin, "not_object", [{"msg": f"expected a JSON object, got {type(obj).__name__}"}])
        try:
            return Event.model_validate(obj, context=self._context)
        except ValidationError as exc:
            errors = [
                {"loc": ".".join(str(p) for p in e["loc"]), "type": e["type"], "msg": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            event_id = obj.get("id") if isinstance(obj.get("id"), str) else None
            return self.dead(raw, origin, "invalid_event", errors, event_id)

    @staticmethod
    def dead(raw: bytes, origin: Origin, reason: str, errors: list[dict], event_id: str | None = None) -> DeadLetter:
        return DeadLetter(
            reason=reason,  # type: ignore[arg-type]
            errors=errors,
            raw=raw[:100_000].decode("utf-8", "replace"),
            event_id=event_id,
            source_topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
            received_at=time.time(),
        )
