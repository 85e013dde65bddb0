"""The alerting records: alert instances, matchers, routes, silences, receivers, notification groups.

Semantics follow Prometheus/Alertmanager where they overlap:

* an alert IS its label set; the fingerprint is Prometheus' ``LabelSet.Fingerprint()`` (FNV-1a 64
  over the sorted ``name 0xff value 0xff`` bytes, 16 hex digits), so it equals the one Alertmanager
  shows for the same labels. Labels with an empty value are dropped (``foo=""`` == no ``foo``);
* matchers ``=``, ``!=``, ``=~``, ``!~``; regexes are fully anchored (``^(?:re)$``) and a missing
  label matches as the empty string. Regexes run on RE2 (``google-re2``): RE2 syntax, as Alertmanager's
  Go ``regexp`` (no backreferences, no look-around), and matching time linear in the text: the text is
  a label such as an event's topic, which any producer chooses, so a backtracking engine would let one
  pattern like ``(a+)+$`` freeze the notifier;
* durations accept seconds or Go-style strings (``"30s"``, ``"5m"``, ``"1h30m"``) and are kept as
  float seconds; times are epoch seconds (ISO-8601 accepted on input). Non-finite numbers (``inf``,
  ``nan``) are refused everywhere, times must lie in [1970, 9999] and durations within ten years.
"""
from __future__ import annotations

import math
import re
import uuid
from datetime import datetime, timezone
from functools import lru_cache
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import re2
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
    computed_field,
    field_validator,
    model_validator,
)

AlertState = Literal["inactive", "pending", "firing", "resolved"]
ACTIVE_STATES = ("pending", "firing")

# patterns shared with pydantic (Rust regex) and OpenAPI: there "$" is the end of the text; in
# Python it also matches before a final newline, so Python code uses fullmatch
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_KAFKA_TOPIC = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")
MAX_LABELS = 32
MAX_LABEL_VALUE = 1024
MAX_REGEX = 512
MAX_MATCHER_TEXT = 2 * MAX_REGEX  # 'name op value' as text: checked before any parsing
MAX_TIMESTAMP = 253_402_300_799.0  # 9999-12-31T23:59:59Z: the last time datetime (and RFC 3339) can show
MAX_DURATION = 10 * 365 * 86_400.0

# ---------------------------------------------------------------------------------------------- time


def rfc3339(ts: float) -> str:
    """Epoch seconds -> RFC 3339 UTC with milliseconds, e.g. ``2024-05-01T12:00:00.000Z``."""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def _finite(x: int | float | str, what: str) -> float:
    """``float(x)``, refusing inf/nan, and ints too large for a float (OverflowError, not a ValueError,
    would escape validation as a server error)."""
    try:
        f = float(x)
    except OverflowError:
        raise ValueError(f"{what} must be a finite number") from None
    if not math.isfinite(f):
        raise ValueError(f"{what} must be a finite number")
    return f


def parse_duration(v: Any) -> Any:
    """Seconds (number or numeric string) or a Go/Prometheus duration such as ``1h30m``."""
    if isinstance(v, bool):
        raise ValueError("duration must be seconds or a string like '5m'")
    if isinstance(v, (int, float)):
        return _finite(v, "duration")
    if isinstance(v, str):
        s = v.strip()
        if len(s) > 64:
            raise ValueError("duration longer than 64 characters")
        try:
            return _finite(s, "duration")
        except ValueError as e:
            if "finite" in str(e):
                raise
        pos, total = 0, 0.0
        for m in _DURATION_PART.finditer(s):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNIT_S[m.group(2)]
            pos = m.end()
        if pos == len(s) and s:
            return total
        raise ValueError(f"invalid duration {v[:40]!r} (seconds or e.g. '30s', '5m', '1h30m')")
    return v


def parse_time(v: Any) -> Any:
    """Epoch seconds, or ISO-8601 (no offset = UTC)."""
    if isinstance(v, bool):
        raise ValueError("time must be epoch seconds or ISO-8601")
    if isinstance(v, (int, float)):
        return _finite(v, "time")
    if isinstance(v, str):
        if len(v) > 64:
            raise ValueError("time longer than 64 characters")
        try:
            return _finite(v, "time")
        except ValueError as e:
            if "finite" in str(e):
                raise
        try:
            t = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("time must be epoch seconds or ISO-8601") from None
        return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=timezone.utc)).timestamp()
    return v


# allow_inf_nan=False also refuses JSON's NaN/Infinity literals, which Python's json module accepts.
# The input schemas say what is accepted (a number, or text); answers always carry the number.
Duration = Annotated[
    float, BeforeValidator(parse_duration), Field(ge=0, le=MAX_DURATION, allow_inf_nan=False),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0, "maximum": MAX_DURATION},
                              {"type": "string", "maxLength": 64, "description": "e.g. '30s', '5m', '1h30m'"}]},
                   mode="validation"),
]
Timestamp = Annotated[
    float, BeforeValidator(parse_time), Field(ge=0, le=MAX_TIMESTAMP, allow_inf_nan=False),
    WithJsonSchema({"anyOf": [{"type": "number", "minimum": 0, "maximum": MAX_TIMESTAMP},
                              {"type": "string", "maxLength": 64, "description": "ISO-8601 (no offset: UTC)"}]},
                   mode="validation"),
]

# -------------------------------------------------------------------------------------------- labels

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK64 = (1 << 64) - 1


def fingerprint(labels: dict[str, str]) -> str:
    """Prometheus/Alertmanager label-set fingerprint (FNV-1a 64, sorted names, 0xff separators)."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for chunk in (name.encode(), b"\xff", labels[name].encode(), b"\xff"):
            for b in chunk:
                h = ((h ^ b) * _FNV_PRIME) & _MASK64
    return f"{h:016x}"


def clean_labels(v: Any) -> dict[str, str]:
    if not isinstance(v, dict):
        raise ValueError("labels must be an object")
    if len(v) > MAX_LABELS:
        raise ValueError(f"more than {MAX_LABELS} labels")
    out: dict[str, str] = {}
    for k, val in v.items():
        if not isinstance(k, str) or not _LABEL_NAME.fullmatch(k):
            raise ValueError(f"label name {str(k)[:40]!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
        if not isinstance(val, str):
            raise ValueError(f"label {k!r} must be a string")
        if len(val) > MAX_LABEL_VALUE:
            raise ValueError(f"label {k!r} longer than {MAX_LABEL_VALUE} chars")
        if val != "":
            out[k] = val
    return out


Labels = Annotated[dict[str, str], BeforeValidator(clean_labels)]

# --------------------------------------------------------------------------------------------- alert


class AlertInstance(BaseModel):
    """One alert (a label set) and where it is in its lifecycle."""

    model_config = ConfigDict(extra="ignore")

    labels: Labels
    annotations: dict[str, Any] = Field(default_factory=dict)
    state: AlertState = "inactive"
    active_since: float | None = Field(None, description="when the condition became active (pending start)")
    last_active_at: float | None = Field(None, description="last observation of the active condition")
    fired_at: float | None = None
    resolved_at: float | None = None
    last_notified_at: float | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def starts_at(self) -> float | None:
        return self.fired_at if self.fired_at is not None else self.active_since


# ------------------------------------------------------------------------------------------ matchers

MatchOp = Literal["=", "!=", "=~", "!~"]
# applied to the stripped text: a lazy group before \s*$ (the old form) was quadratic on long blanks
_MATCHER_TEXT = re.compile(r'^([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)(.*)$', re.S)


def _re2_options() -> "re2.Options":
    o = re2.Options()
    o.dot_nl = True          # '.' matches a newline too, as the former re.S did
    o.never_capture = True   # only match/no match is needed
    o.log_errors = False     # errors come back as exceptions; RE2 would also print them to stderr
    o.max_mem = 1 << 20      # compiled-program budget: bigger patterns fail to compile (422), not slow
    return o


_RE2_OPTIONS = _re2_options()


@lru_cache(maxsize=4096)
def compile_matcher_regex(value: str) -> "re2._Regexp":
    """``^(?:value)$`` compiled by RE2 (cached: routes and silences are re-validated on every reload).
    Raises ``ValueError`` with RE2's reason for patterns RE2 refuses."""
    try:
        return re2.compile(f"^(?:{value})$", _RE2_OPTIONS)
    except re2.error as e:
        reason = e.args[0] if e.args else e
        raise ValueError(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)) from None


class Matcher(BaseModel):
    """``name op value``; a missing label is the empty string (Alertmanager semantics)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_LABEL_NAME.pattern)
    op: MatchOp = "="
    value: str = Field("", max_length=MAX_REGEX)

    @model_validator(mode="before")
    @classmethod
    def _from_alertmanager(cls, data: Any) -> Any:
        """Also accepts Alertmanager's API form ``{name, value, isRegex, isEqual}`` and text."""
        if isinstance(data, str):
            return cls._parse_text(data)
        if isinstance(data, dict) and "isRegex" in data:
            unknown = set(data) - {"name", "value", "isRegex", "isEqual"}
            if unknown:
                raise ValueError(f"unknown field(s) {sorted(map(str, unknown))[:3]} in an Alertmanager-form matcher")
            regex, equal = data.get("isRegex"), data.get("isEqual", True)
            if not isinstance(regex, bool) or not isinstance(equal, bool):
                raise ValueError("isRegex and isEqual must be true or false")
            op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}[(regex, equal)]
            return {"name": data.get("name"), "op": op, "value": data.get("value", "")}
        return data

    @model_validator(mode="after")
    def _compiles(self) -> "Matcher":
        if self.op in ("=~", "!~"):
            try:
                compile_matcher_regex(self.value)  # compile now so bad patterns fail validation
            except ValueError as e:
                raise ValueError(f"invalid regex {self.value[:40]!r}: {e}") from None
        return self

    @property
    def _regex(self) -> "re2._Regexp":
        # a module-level cache rather than a cached attribute: matchers stay plain, copyable values
        return compile_matcher_regex(self.value)

    @staticmethod
    def _parse_text(text: str) -> dict[str, str]:
        if len(text) > MAX_MATCHER_TEXT:
            raise ValueError(f"matcher longer than {MAX_MATCHER_TEXT} characters")
        m = _MATCHER_TEXT.match(text.strip())
        if not m:
            raise ValueError(f"matcher {text[:60]!r} is not 'name=value', 'name!=value', 'name=~re' or 'name!~re'")
        name, op, value = m.groups()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        return {"name": name, "op": op, "value": value}

    @classmethod
    def parse(cls, text: str) -> "Matcher":
        return cls.model_validate(text)

    def matches(self, labels: dict[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = self._regex.fullmatch(v) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


_LABEL_NAME_SCHEMA = {"type": "string", "pattern": _LABEL_NAME.pattern}
# what a matcher may be sent as (the answer is always the first form)
MatcherInput = Annotated[Matcher, WithJsonSchema({"anyOf": [
    {"type": "object", "title": "Matcher", "additionalProperties": False, "required": ["name"], "properties": {
        "name": _LABEL_NAME_SCHEMA, "op": {"enum": ["=", "!=", "=~", "!~"], "default": "="},
        "value": {"type": "string", "maxLength": MAX_REGEX, "default": ""}}},
    {"type": "object", "title": "Alertmanager matcher", "additionalProperties": False,
     "required": ["name", "isRegex"], "properties": {
        "name": _LABEL_NAME_SCHEMA, "value": {"type": "string", "maxLength": MAX_REGEX, "default": ""},
        "isRegex": {"type": "boolean"}, "isEqual": {"type": "boolean", "default": True}}},
    {"type": "string", "maxLength": MAX_MATCHER_TEXT, "description": "amtool syntax, e.g. topic=~\"AAPL|TSLA\""},
]}, mode="validation")]


def match_all(matchers: list[Matcher], labels: dict[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


# ----------------------------------------------------------------------------------------- receivers


def _http_url(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be http(s)://host[:port]/...")
    if parts.username or parts.password:
        raise ValueError("url must not carry credentials; use secret_ref")
    return v


def _tag_required(schema: dict[str, Any]) -> None:
    # ``type`` has a default for Python callers, but in JSON it picks the receiver kind: required there
    required = schema.setdefault("required", [])
    if "type" not in required:
        required.insert(0, "type")


class _ReceiverBase(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra=_tag_required)

    name: str = Field("", max_length=64, description="unique within the route; defaults to '<type>-<n>'")


class KafkaReceiver(_ReceiverBase):
    type: Literal["kafka"] = "kafka"
    topic: str = Field(pattern=_KAFKA_TOPIC.pattern)


class _HttpReceiver(_ReceiverBase):
    # strict: a JSON number only, no "5" or true coerced (the body means what its schema says)
    url: str = Field(max_length=2048)
    timeout_s: float = Field(5.0, gt=0, le=60, strict=True)
    retries: int = Field(3, ge=0, le=10, strict=True, description="attempts after the first one")
    backoff_s: float = Field(0.5, ge=0, le=60, strict=True, description="first retry delay; doubles each retry")
    max_backoff_s: float = Field(30.0, ge=0, le=600, strict=True)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _http_url(v)


class WebhookReceiver(_HttpReceiver):
    type: Literal["webhook"] = "webhook"
    secret_ref: str | None = Field(
        None, max_length=200, description="where the HMAC secret lives, e.g. 'env:BABELWATCH_HOOK_ACME' (never the secret)"
    )
    format: Literal["cloudevents", "alertmanager", "slack"] = Field(
        "cloudevents", description="body: a CloudEvent, Alertmanager's webhook payload, or Slack-compatible "
                                   "incoming-webhook JSON (Mattermost, Teams); same signing and retries (sinks/webhook.py)"
    )


class AlertmanagerReceiver(_HttpReceiver):
    type: Literal["alertmanager"] = "alertmanager"


class SseReceiver(_ReceiverBase):
    type: Literal["sse"] = "sse"
    channel: str = Field("", max_length=64, description="browser stream channel; defaults to the receiver name")


Receiver = Annotated[
    Union[KafkaReceiver, WebhookReceiver, AlertmanagerReceiver, SseReceiver], Field(discriminator="type")
]

# ------------------------------------------------------------------------------------ routes, silences


def _new_id() -> str:
    return uuid.uuid4().hex


class Route(BaseModel):
    """A subscription: which alerts (matchers), how they are grouped and timed, where they go.

    Routes are flat: every route whose matchers all hold receives the alert (there is no tree and no
    ``continue``); an empty matcher list matches every alert. ``group_by: ["..."]`` groups by all
    labels (one group per alert), ``[]`` puts every matching alert in one group.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str = Field(default_factory=_new_id, pattern=_ID.pattern)
    description: str = Field("", max_length=500)
    matchers: list[MatcherInput] = Field(default_factory=list, max_length=32)
    group_by: list[str] = Field(default_factory=list, max_length=32)
    group_wait: Duration = 30.0
    group_interval: Duration = 300.0
    repeat_interval: Duration = 4 * 3600.0
    send_resolved: StrictBool = True
    receivers: list[Receiver] = Field(min_length=1, max_length=16)

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, v: list[str]) -> list[str]:
        if "..." in v and len(v) > 1:
            raise ValueError("group_by '...' (all labels) cannot be combined with other labels")
        for name in v:
            if name != "..." and not _LABEL_NAME.fullmatch(name):
                raise ValueError(f"group_by label {name[:40]!r} is not a label name")
        return v

    @model_validator(mode="after")
    def _receivers(self) -> "Route":
        if self.group_interval <= 0 or self.repeat_interval <= 0:
            raise ValueError("group_interval and repeat_interval must be > 0")
        seen: set[str] = set()
        for i, r in enumerate(self.receivers):
            if not r.name:
                r.name = f"{r.type}-{i}"
            if r.name in seen:
                raise ValueError(f"receiver name {r.name!r} used twice in route {self.id!r}")
            seen.add(r.name)
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        return match_all(self.matchers, labels)

    def group_labels(self, labels: dict[str, str]) -> dict[str, str]:
        if self.group_by == ["..."]:
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}


SilenceState = Literal["pending", "active", "expired"]


class Silence(BaseModel):
    """Mutes matching alerts while ``starts_at <= now < ends_at``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str = Field(default_factory=_new_id, pattern=_ID.pattern)
    matchers: list[MatcherInput] = Field(min_length=1, max_length=32)
    starts_at: Timestamp
    ends_at: Timestamp
    created_by: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _window(self) -> "Silence":
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def state(self, now: float) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def mutes(self, labels: dict[str, str], now: float) -> bool:
        return self.starts_at <= now < self.ends_at and match_all(self.matchers, labels)


# ------------------------------------------------------------------------------ notification groups

_ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager webhook's endsAt of a firing alert


class NotificationGroup(BaseModel):
    """What one route sends its receivers at one flush: the group's alerts at that moment."""

    group_key: str
    route_id: str
    receivers: list[Receiver]
    group_labels: dict[str, str]
    status: Literal["firing", "resolved"]
    alerts: list[AlertInstance]
    created_at: float
    repeat_interval: float = 4 * 3600.0
    # delivery bookkeeping, never sent: the consumed records this notification reports (each with
    # its alert event id and a hold, see workers.alerting.offsets) and the resolved alerts in it
    # whose firing notification the router did not see (the lane decides, workers.alerting.ledger)
    sources: list[Any] = Field(default_factory=list, exclude=True, repr=False)
    unconfirmed: list[str] = Field(default_factory=list, exclude=True)

    @property
    def event_ids(self) -> list[str]:
        return sorted({s.event_id for s in self.sources if s.event_id})

    @property
    def id(self) -> str:
        """Stable per (group, flush time): retries of the same notification share it."""
        return uuid.uuid5(uuid.NAMESPACE_URL, f"babelwatch:{self.group_key}:{self.created_at!r}").hex

    def common_labels(self) -> dict[str, str]:
        if not self.alerts:
            return {}
        common = dict(self.alerts[0].labels)
        for a in self.alerts[1:]:
            common = {k: v for k, v in common.items() if a.labels.get(k) == v}
        return common

    def common_annotations(self) -> dict[str, Any]:
        if not self.alerts:
            return {}
        common = dict(self.alerts[0].annotations)
        for a in self.alerts[1:]:
            common = {k: v for k, v in common.items() if a.annotations.get(k) == v}
        return common

    def payload(self, receiver: str = "") -> dict[str, Any]:
        """The group as JSON data, shaped like Alertmanager's webhook body (camelCase)."""
        return {
            "version": "1",
            "groupKey": self.group_key,
            "routeId": self.route_id,
            "receiver": receiver,
            "status": self.status,
            "groupLabels": self.group_labels,
            "commonLabels": self.common_labels(),
            "commonAnnotations": self.common_annotations(),
            "alerts": [
                {
                    "status": "resolved" if a.state == "resolved" else "firing",
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": rfc3339(a.starts_at) if a.starts_at is not None else _ZERO_TIME,
                    "endsAt": rfc3339(a.resolved_at) if a.resolved_at is not None else _ZERO_TIME,
                    "fingerprint": a.fingerprint,
                }
                for a in self.alerts
            ],
        }
