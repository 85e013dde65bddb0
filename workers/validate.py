"""Raw Kafka payload -> Event, or a DeadLetter that says why not. Never raises on bad input."""
from __future__ import annotations

import time
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from fusion_model.preprocess import ImageLimits, check_image_header
from contracts.schema import DeadLetter, Event, Limits


@dataclass(frozen=True)
class Origin:
    """Where a payload came from, so a dead letter can point back at it."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


class EventValidator:
    def __init__(self, limits: Limits, max_event_bytes: int = 2_000_000, max_future_s: float | None = 300.0,
                 image_limits: ImageLimits | None = None) -> None:
        self.limits = limits
        self.max_event_bytes = max_event_bytes
        self.max_future_s = max_future_s  # None: no check (offline scoring of any date)
        self.image_limits = image_limits or ImageLimits()
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
            event = Event.model_validate(obj, context=self._context)
        except ValidationError as exc:
            errors = [
                {"loc": ".".join(str(p) for p in e["loc"]), "type": e["type"], "msg": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ]
            event_id = obj.get("id") if isinstance(obj.get("id"), str) else None
            return self.dead(raw, origin, "invalid_event", errors, event_id)
        # one event dated years ahead would move its topic's watermark there and make every later
        # event late: the future is refused against our own clock (docs: README, event time)
        if self.max_future_s is not None and event.ts > time.time() + self.max_future_s:
            return self.dead(raw, origin, "future_timestamp", [{
                "loc": "ts", "msg": f"ts {event.ts:.3f} is more than {self.max_future_s:g} s past this worker's clock"}],
                event.id)
        if event.image_b64 is not None:
            # from the header alone (well under a millisecond): a 52 KB PNG of 1 x 10,000,000
            # pixels never reaches the model (the model checks again, for other clients)
            why = check_image_header(event.image_bytes(), self.image_limits)
            if why is not None:
                return self.dead(raw, origin, "invalid_image", [{"loc": "image_b64", "msg": why}], event.id)
        return event

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
