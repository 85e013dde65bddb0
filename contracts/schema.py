"""The data contract: what comes in (Event), what goes out (Scored, DeadLetter).

Alerts go out as CloudEvents carrying ``workers.alerting.model.AlertInstance`` (see README).

Kept free of Kafka and Faust so every worker and the CLI can use it alone.
"""
from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictStr, ValidationInfo, field_validator, model_validator

LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")
Label = Literal["negative", "neutral", "positive"]
UNDETERMINED = "und"
MAX_TS = 1e10
ALL_LANGS = "*"

# \Z, not $: in Python, $ also matches before a final newline ("en\n" would pass into Redis keys)
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*\Z")
_SOURCE = re.compile(r"^[A-Za-z0-9_.\-]{1,50}\Z")


class Limits(BaseModel):
    """Input size limits, passed as validation context so they come from Settings."""

    max_text_chars: int = 10_000
    max_image_bytes: int = 1_000_000
    max_meta_keys: int = 50
    fetch_image_urls: bool = False  # an image_url counts as content (it will be fetched)


class Event(BaseModel):
    """One text and/or image event, e.g. a news headline or a social post about a topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: StrictStr = Field(min_length=1, max_length=200)
    source: StrictStr = Field(description="news, social, ...")
    topic: StrictStr = Field(min_length=1, max_length=200, description="what is monitored: ticker, brand")
    text: StrictStr = ""
    lang: StrictStr | None = Field(None, description="BCP-47; detected when absent")
    image_b64: StrictStr | None = Field(None, description="inline image bytes, base64")
    image_url: StrictStr | None = Field(None, max_length=2048, description="kept, fetched only if enabled")
    ts: float = Field(description="event time, epoch seconds (ISO-8601 accepted)")
    meta: dict[str, Any] = Field(default_factory=dict)
    _decoded_image: bytes | None = PrivateAttr(default=None)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not _SOURCE.match(v):
            raise ValueError("source must be 1-50 chars of [A-Za-z0-9_.-]")
        return v

    @field_validator("lang")
    @classmethod
    def _lang(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if not _BCP47.match(v):
            raise ValueError(f"lang {v[:20]!r} is not a BCP-47 tag")
        primary, _, rest = v.partition("-")
        return primary.lower() + ("-" + rest if rest else "")

    @field_validator("ts", mode="before")
    @classmethod
    def _ts(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("ts must be epoch seconds or ISO-8601") from None
            # no offset given: UTC, so workers in different time zones agree on the window
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).timestamp()
        if isinstance(v, bool):
            raise ValueError("ts must be a number")
        return v

    @field_validator("ts")
    @classmethod
    def _ts_range(cls, v: float) -> float:
        if not (0 < v < MAX_TS):
            raise ValueError("ts out of range (epoch seconds between 1970 and 2286)")
        return v

    @field_validator("text")
    @classmethod
    def _text(cls, v: str, info) -> str:
        limits: Limits = (info.context or {}).get("limits") or Limits()
        if len(v) > limits.max_text_chars:
            raise ValueError(f"text longer than {limits.max_text_chars} chars")
        return v

    @field_validator("image_b64")
    @classmethod
    def _image(cls, v: str | None, info) -> str | None:
        if v is None or v == "":
            return None  # "" is how clients and the model say "no image"
        limits: Limits = (info.context or {}).get("limits") or Limits()
        if len(v) > (limits.max_image_bytes * 4) // 3 + 4:  # cheap pre-check before decoding
            raise ValueError(f"image larger than {limits.max_image_bytes} bytes")
        try:
            size = len(base64.b64decode(v, validate=True))
        except (binascii.Error, ValueError):
            raise ValueError("image_b64 is not valid base64") from None
        if size > limits.max_image_bytes:
            raise ValueError(f"image larger than {limits.max_image_bytes} bytes")
        return v

    @field_validator("meta")
    @classmethod
    def _meta(cls, v: dict, info) -> dict:
        limits: Limits = (info.context or {}).get("limits") or Limits()
        if len(v) > limits.max_meta_keys:
            raise ValueError(f"meta has more than {limits.max_meta_keys} keys")
        return v

    @model_validator(mode="after")
    def _has_content(self, info: ValidationInfo) -> "Event":
        if self.text.strip() or self.image_b64 is not None:
            return self
        limits: Limits = (info.context or {}).get("limits") or Limits()
        if self.image_url and limits.fetch_image_urls:
            return self  # its image is fetched; if that fails, the event is dead-lettered
        raise ValueError("event has neither text nor image" + (
            " (image_url is not fetched: fetching is disabled)" if self.image_url else ""))

    def image_bytes(self) -> bytes | None:
        # decoded once: the validator's header check and the pipeline both need the bytes
        if self.image_b64 is not None and self._decoded_image is None:
            self._decoded_image = base64.b64decode(self.image_b64)
        return self._decoded_image


class Scored(BaseModel):
    """One scored event, written to the scored topic."""

    id: str
    topic: str
    source: str
    lang: str
    lang_detected: bool = Field(description="True when lang came from language identification")
    label: Label
    probabilities: dict[str, float]
    sentiment: float = Field(description="p(positive) - p(negative), in [-1, 1]")
    modalities: list[str]
    image_error: str | None = Field(None, description="why the event's image_url was not used (fetch failed, "
                                    "undecodable); the event was scored on its text")
    model: str
    ts: float
    scored_at: float
    story: str | None = Field(None, description="the cross-lingual story the event joined (docs/design.md "
                              "\"Stories\"); None without a text embedding or with stories disabled")


class DeadLetter(BaseModel):
    """An input that could not be processed, with a machine-readable reason and the raw payload."""

    reason: Literal["not_json", "not_object", "invalid_event", "too_large", "invalid_image", "scoring_failed",
                    "image_fetch_failed", "future_timestamp", "processing_failed"]
    errors: list[dict[str, Any]] = Field(default_factory=list)
    raw: str = Field(description="the payload as received (utf-8, invalid bytes replaced)")
    event_id: str | None = None
    source_topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    received_at: float
