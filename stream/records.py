"""How records ride on Kafka: compact JSON bytes, keyed so related records share a partition."""
from __future__ import annotations

from pydantic import BaseModel

from contracts.schema import DeadLetter, Scored


def encode(record: BaseModel) -> bytes:
    # pydantic's own serializer: ~3 us against ~20 us for model_dump + orjson (bench/RESULTS.md)
    return record.model_dump_json().encode()


def key_of(record: Scored | DeadLetter) -> bytes | None:
    if isinstance(record, Scored):
        return record.topic.encode()
    return record.event_id.encode() if record.event_id else None
