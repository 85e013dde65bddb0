"""Per-topic detector configuration: which closed-window detectors run, with which parameters,
on which window size.

A :class:`DetectorConfig` is a ``default`` profile plus ``topics`` overrides (exact name or glob);
exactly one override applies to a topic (exact, else the most specific glob), never stacked.
Rules, an example and the defaults: docs/detectors.md#configuration
"""
from __future__ import annotations

import fnmatch
import functools
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model, model_validator

from workers.detectors.base import InSeconds, OnlineDetector, parameters
from workers.detectors.cusum import Cusum
from workers.detectors.sentiment_shift import SentimentShift
from workers.detectors.volume_spike import VolumeSpike

DETECTORS: tuple[type[OnlineDetector], ...] = (VolumeSpike, SentimentShift, Cusum)  # the kinds a config may name
KINDS: dict[str, type[OnlineDetector]] = {cls.kind: cls for cls in DETECTORS}


class _Spec(BaseModel):
    """One detector of a profile; :func:`spec_model` adds ``kind`` and the class's parameters."""

    model_config = ConfigDict(extra="forbid")
    detector: ClassVar[type[OnlineDetector]]

    @property
    def detector_name(self) -> str:
        return self.name or self.detector.default_name(self.model_dump())

    def params(self, window_s: int | None) -> dict[str, Any]:
        """The detector's arguments on ``window_s`` windows (None: those given in seconds left out)."""
        seconds = _seconds_params(self.detector)
        out = {p: getattr(self, p) for p in parameters(self.detector) if p not in seconds}
        for p, s in seconds.items() if window_s is not None else ():
            given = getattr(self, s.name)
            out[p] = given // window_s
            if given and not out[p]:
                raise ValueError(f"{s.name} {given} is shorter than one {window_s}s window")
        out["name"] = self.detector_name
        return out

    def build(self, window_s: int) -> OnlineDetector:
        params = self.params(window_s)
        try:
            return self.detector(**params)
        except ValueError as e:
            converted = "".join(f" ({s.name} {getattr(self, s.name)} = {params[p]} windows)"
                                for p, s in _seconds_params(self.detector).items())
            raise ValueError(f"{self.detector_name} on {window_s}s windows{converted}: {e}") from None

    @model_validator(mode="after")
    def _rules_between_parameters(self) -> "_Spec":
        self.detector(**self.params(None))  # e.g. history >= min_history; those in seconds wait for build
        return self


@functools.cache
def _seconds_params(cls: type[OnlineDetector]) -> dict[str, InSeconds]:
    """The parameters marked :class:`InSeconds` (a config gives them in seconds)."""
    return {p: m for p, (annotation, _) in parameters(cls).items()
            for m in getattr(annotation, "__metadata__", ()) if isinstance(m, InSeconds)}


def spec_model(cls: type[OnlineDetector]) -> type[_Spec]:
    """The config entry of a detector kind: its ``__init__`` parameters with their constraints,
    ``config_defaults`` over the class defaults, parameters marked :class:`InSeconds` in seconds."""
    fields: dict[str, Any] = {}
    for p, (annotation, default) in parameters(cls).items():
        seconds = _seconds_params(cls).get(p)
        if seconds is not None:
            p, annotation, default = seconds.name, Annotated[int, Field(ge=0, description=seconds.description)], 0
        fields[p] = (annotation, cls.config_defaults.get(p, default))
    fields = {"name": fields.pop("name"), "kind": (Literal[cls.kind], cls.kind), **fields}
    spec = create_model(f"{cls.__name__}Spec", __base__=_Spec, __module__=__name__, **fields)
    spec.detector = cls
    return spec


SPECS: dict[str, type[_Spec]] = {kind: spec_model(cls) for kind, cls in KINDS.items()}
VolumeSpikeSpec, SentimentShiftSpec, CusumSpec = SPECS["volume_spike"], SPECS["sentiment_shift"], SPECS["cusum"]
DetectorSpec = Annotated[Union[tuple(SPECS.values())], Field(discriminator="kind")]
_SPEC = TypeAdapter(DetectorSpec)


def _default_detectors() -> list:
    return [VolumeSpikeSpec(), SentimentShiftSpec(), CusumSpec()]


def _unique(specs: list) -> None:
    names = [s.detector_name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"detector names must be unique per topic, repeated: {dup}")


class TopicProfile(BaseModel):
    """What runs on one topic: the window size its detectors see and the detectors."""

    model_config = ConfigDict(extra="forbid")

    window_s: int = Field(60, ge=1, description="size of the closed windows the detectors are fed")
    detectors: list[DetectorSpec] = Field(default_factory=_default_detectors)

    @model_validator(mode="after")
    def _names(self) -> "TopicProfile":
        _unique(self.detectors)
        return self

    def names(self) -> list[str]:
        return [s.detector_name for s in self.detectors]


class TopicOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_s: int | None = Field(None, ge=1)
    detectors: list[DetectorSpec] | None = Field(None, description="replaces the default list")
    disable: list[str] = Field(default_factory=list, description="detector names switched off")
    params: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per name: parameters to change")

    def apply(self, base: TopicProfile) -> TopicProfile:
        specs = list(self.detectors) if self.detectors is not None else list(base.detectors)
        names = [s.detector_name for s in specs]
        unknown = sorted((set(self.disable) | set(self.params)) - set(names))
        if unknown:
            raise ValueError(f"no detector named {unknown} (have {names})")
        out = []
        for spec in specs:
            n = spec.detector_name
            if n in self.disable:
                continue
            if n in self.params:
                # the name is pinned: tuning e.g. a CUSUM's metric must not rename it (alert ids, state)
                spec = _SPEC.validate_python({**spec.model_dump(), "name": n, **self.params[n]})
            out.append(spec)
        return TopicProfile(window_s=self.window_s or base.window_s, detectors=out)


def _is_glob(key: str) -> bool:
    return any(c in key for c in "*?[")


def _specificity(pattern: str) -> int:
    return sum(1 for c in pattern if c not in "*?[]")


class DetectorConfig(BaseModel):
    """The default profile plus per-topic overrides (exact topic or glob)."""

    model_config = ConfigDict(extra="forbid")

    default: TopicProfile = Field(default_factory=TopicProfile)
    topics: dict[str, TopicOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _overrides_resolve(self) -> "DetectorConfig":
        for key, override in self.topics.items():
            try:
                override.apply(self.default)
            except ValueError as e:
                raise ValueError(f"topics[{key!r}]: {e}") from None
        return self

    def match(self, topic: str) -> str | None:
        """The key of the override that applies to ``topic``, or None."""
        if topic in self.topics:
            return topic
        best, best_spec = None, -1
        for key in self.topics:  # dicts keep declaration order: first wins a tie
            if _is_glob(key) and fnmatch.fnmatchcase(topic, key) and _specificity(key) > best_spec:
                best, best_spec = key, _specificity(key)
        return best

    def resolve(self, topic: str) -> TopicProfile:
        key = self.match(topic)
        return self.default if key is None else self.topics[key].apply(self.default)

    @classmethod
    def from_file(cls, path: str | Path) -> "DetectorConfig":
        return cls.model_validate_json(Path(path).read_text())


def build_detectors(config: DetectorConfig, topic: str) -> list[OnlineDetector]:
    """Fresh (cold) detectors for one (topic, language) series of ``config.resolve(topic).window_s``
    windows. Keep one list per (topic, language): the detectors hold that series' state."""
    profile = config.resolve(topic)
    return [spec.build(profile.window_s) for spec in profile.detectors]


def detector_from_state(state: Mapping[str, Any]) -> OnlineDetector:
    return KINDS[state["kind"]].from_state(dict(state))


def restore_detectors(
    config: DetectorConfig, topic: str, states: Mapping[str, Mapping[str, Any]] | None
) -> list[OnlineDetector]:
    """Like :func:`build_detectors`, continuing from saved states (``{name: detector.state()}``)
    where a detector of that name and kind was saved with the same parameters. A detector whose
    configuration changed starts cold again (its learned state may not fit the new parameters)."""
    out = []
    for det in build_detectors(config, topic):
        saved = (states or {}).get(det.name)
        if saved and saved.get("kind") == det.kind and saved.get("params") == det.params():
            det = detector_from_state(saved)
        out.append(det)
    return out


def snapshot(detectors: list[OnlineDetector]) -> dict[str, dict]:
    """``{name: state}`` for :func:`restore_detectors` (JSON-serialisable)."""
    return {d.name: d.state() for d in detectors}
