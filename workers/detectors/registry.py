"""Per-topic detector configuration: which closed-window detectors run, with which parameters,
on which window size.

A :class:`DetectorConfig` has a ``default`` profile and ``topics`` overrides keyed by an exact topic
name or a glob (``fnmatch``: ``crypto:*``, ``AAPL?``). Exactly ONE override applies to a topic: the
exact key if there is one, else the most specific matching glob (most non-wildcard characters;
ties: the one declared first). Overrides are not stacked. An override may

* replace ``window_s`` and/or the whole ``detectors`` list,
* ``disable`` detectors by name,
* tune single parameters by name: ``params: {"volume_spike": {"threshold": 6}}``.

Detector names are unique within a profile; a name is what Alert ids and stored state are keyed by
(two CUSUMs need two names). Seasonality is configured in seconds (``season_s``, e.g. 86400) and
converted to windows of the profile's size.

Example (JSON, e.g. from a file via :meth:`DetectorConfig.from_file`)::

    {"default": {"window_s": 300},
     "topics": {"crypto:*": {"params": {"volume_spike": {"threshold": 6}}},
                "AAPL":     {"window_s": 60, "disable": ["cusum"]}}}
"""
from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from workers.detectors.base import WindowDetector
from workers.detectors.cusum import Cusum
from workers.detectors.sentiment_shift import SentimentShift
from workers.detectors.volume_spike import VolumeSpike


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=64, description="defaults to the kind")

    @property
    def detector_name(self) -> str:
        return self.name or self.default_name()

    def default_name(self) -> str:
        return self.kind  # type: ignore[attr-defined]

    def build(self, window_s: int) -> WindowDetector:
        raise NotImplementedError


class VolumeSpikeSpec(_Spec):
    kind: Literal["volume_spike"] = "volume_spike"
    threshold: float = Field(5.0, gt=0, description="robust z-score that fires")
    min_history: int = Field(6, ge=1, description="closed windows before the first verdict")
    min_count: int = Field(20, ge=0, description="no alert for windows with fewer events")
    history: int = Field(24, ge=1, description="closed windows in the rolling median/MAD")
    season_s: int = Field(86_400, ge=0, description="period of the seasonal baseline in seconds, 0 = off")
    seasons: int = Field(3, ge=1, description="periods the seasonal baseline looks back")
    season_width: int = Field(1, ge=0, description="+- windows around the same time of an earlier period")

    @model_validator(mode="after")
    def _history(self) -> "VolumeSpikeSpec":
        if self.history < self.min_history:
            raise ValueError("history must be >= min_history")
        return self

    def build(self, window_s: int) -> VolumeSpike:
        season = self.season_s // window_s if self.season_s else 0
        if self.season_s and season <= 2 * self.season_width:
            raise ValueError(f"season_s {self.season_s} is too short for {window_s}s windows")
        return VolumeSpike(
            threshold=self.threshold, min_history=self.min_history, min_count=self.min_count,
            history=self.history, season=season, seasons=self.seasons, season_width=self.season_width,
            name=self.detector_name,
        )


class SentimentShiftSpec(_Spec):
    kind: Literal["sentiment_shift"] = "sentiment_shift"
    alpha: float = Field(0.1, gt=0, le=1, description="EWMA weight of the newest window")
    threshold: float = Field(4.0, gt=0, description="|z| that fires")
    min_count: int = Field(20, ge=1, description="windows with fewer events are skipped")
    min_history: int = Field(8, ge=2, description="windows folded in before the first verdict")
    min_delta: float = Field(0.05, ge=0, description="smallest |mean - EWMA| that alerts")
    floor: float = Field(1e-4, gt=0, description="variance floor")
    clip: float = Field(3.0, ge=0, description="residuals folded in are clipped at this many sd, 0 = off")

    def build(self, window_s: int) -> SentimentShift:
        return SentimentShift(
            alpha=self.alpha, threshold=self.threshold, min_count=self.min_count, min_history=self.min_history,
            min_delta=self.min_delta, floor=self.floor, clip=self.clip, name=self.detector_name,
        )


class CusumSpec(_Spec):
    kind: Literal["cusum"] = "cusum"
    metric: Literal["sentiment", "volume"] = "sentiment"
    k: float = Field(0.75, ge=0, description="allowance, in reference sigmas")
    h: float = Field(8.0, gt=0, description="decision threshold")
    warmup: int = Field(24, ge=2, description="windows that (re)learn the reference")
    min_count: int = Field(20, ge=0)
    sd_floor: float = Field(0.01, gt=0)
    alpha: float = Field(0.01, ge=0, lt=1, description="EWMA tracking of the reference, 0 = frozen")
    relearn: bool = Field(True, description="learn the reference again after an alarm")

    def default_name(self) -> str:
        return "cusum" if self.metric == "sentiment" else f"cusum_{self.metric}"

    def build(self, window_s: int) -> Cusum:
        return Cusum(
            metric=self.metric, k=self.k, h=self.h, warmup=self.warmup, min_count=self.min_count,
            sd_floor=self.sd_floor, alpha=self.alpha, relearn=self.relearn, name=self.detector_name,
        )


DetectorSpec = Annotated[Union[VolumeSpikeSpec, SentimentShiftSpec, CusumSpec], Field(discriminator="kind")]
_SPEC = TypeAdapter(DetectorSpec)

KINDS: dict[str, type] = {"volume_spike": VolumeSpike, "sentiment_shift": SentimentShift, "cusum": Cusum}


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


def build_detectors(config: DetectorConfig, topic: str) -> list[WindowDetector]:
    """Fresh (cold) detectors for one (topic, language) series of ``config.resolve(topic).window_s``
    windows. Keep one list per (topic, language): the detectors hold that series' state."""
    profile = config.resolve(topic)
    return [spec.build(profile.window_s) for spec in profile.detectors]


def detector_from_state(state: Mapping[str, Any]) -> WindowDetector:
    return KINDS[state["kind"]].from_state(dict(state))


def restore_detectors(
    config: DetectorConfig, topic: str, states: Mapping[str, Mapping[str, Any]] | None
) -> list[WindowDetector]:
    """Like :func:`build_detectors`, continuing from saved states (``{name: detector.state()}``)
    where a detector of that name and kind was saved with the same parameters. A detector whose
    configuration changed starts cold again (its learned state may not fit the new parameters)."""
    out = []
    for det in build_detectors(config, topic):
        saved = (states or {}).get(det.name)
        fresh = det.state()
        if saved and saved.get("kind") == fresh["kind"] and saved.get("params") == fresh["params"]:
            det = detector_from_state(saved)
        out.append(det)
    return out


def snapshot(detectors: list[WindowDetector]) -> dict[str, dict]:
    """``{name: state}`` for :func:`restore_detectors` (JSON-serialisable)."""
    return {d.name: d.state() for d in detectors}
