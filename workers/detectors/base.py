"""Detectors: look at a window, return a :class:`Verdict`.

* :class:`Detector` -- ``check(WindowState)``: a stateless look at an OPEN window that is still
  filling, with the volume history Redis hands back (the pipeline's early volume-spike alarm).
* :class:`WindowDetector` -- ``update(ClosedWindow)``: an online estimator fed each CLOSED window of
  one (topic, language, window shape) series once, oldest first; ``state()`` / ``from_state`` carry
  its state through Redis as JSON, so any worker can continue the series.
* :class:`OnlineDetector` -- the base class the WindowDetectors are written on (in the style of
  river): parameters and learned state are declared once, as fields; ``update`` is
  guard -> judge -> learn, the subclass writes those steps.

Contract of ``update``: ``None`` while cold or when the guard skips the window, else a Verdict
(``anomalous`` says whether to alert); a window not after the last one seen is ignored (state
unchanged), so a redelivered or out-of-order window cannot corrupt the state; ``from_state(d.state())``
behaves exactly like ``d`` from then on.
"""
from __future__ import annotations

import functools
import inspect
from collections import deque
from dataclasses import MISSING, dataclass, field, fields
from typing import (
    Annotated, Any, ClassVar, Mapping, Protocol, Self, dataclass_transform, get_type_hints, runtime_checkable,
)

from pydantic import BaseModel, Field, TypeAdapter, create_model

from contracts.windows import ClosedWindow  # re-exported: one closed-window type for store, outbox, detectors
from workers.windows import WindowState


@dataclass(frozen=True)
class Verdict:
    detector: str
    score: float
    threshold: float
    value: float
    baseline: float
    anomalous: bool
    message: str = ""


class Detector(Protocol):
    name: str

    def check(self, window: WindowState) -> Verdict | None:
        """A verdict for this window, or None when there is not enough data to judge."""


@runtime_checkable
class WindowDetector(Protocol):
    """An online detector over one series of closed windows (see the module docstring)."""

    name: str

    def update(self, window: ClosedWindow) -> Verdict | None:
        """Judge this closed window against the state, then fold it into the state."""

    def state(self) -> dict:
        """Parameters and learned state as JSON-serialisable data."""

    @classmethod
    def from_state(cls, state: dict) -> "WindowDetector":
        """A detector equivalent to the one ``state`` was taken from."""


# --- the base class -------------------------------------------------------------------------------

def learned(default: Any = MISSING, *, default_factory: Any = MISSING) -> Any:
    """A field of learned state: not a parameter; ``state()`` saves it under its name."""
    return field(default=default, default_factory=default_factory, init=False, repr=False)


@dataclass(frozen=True)
class InSeconds:
    """Marks a parameter counted in windows that a config gives in seconds, as ``name`` (the
    registry divides by the profile's window size). Its config default is 0 unless the class's
    ``config_defaults`` names it."""

    name: str
    description: str = ""


@dataclass_transform(field_specifiers=(field, learned))
@dataclass(eq=False)
class OnlineDetector:
    """A closed-window detector. A subclass declares

    * ``kind``, the name of its kind in configs and saved states;
    * its parameters as annotated fields with defaults: they make ``__init__`` (a dataclass), and
      their pydantic ``Field`` constraints are checked there and by the config (one declaration);
    * its learned state as ``learned(...)`` fields: ``state()`` / ``from_state`` save and restore
      them by name;

    and implements ``_judge`` and ``_learn`` (optionally ``_guard``, ``_warm``, ``_missed``,
    ``_validate``). ``update`` calls them in order: guard -> judge (once warm) -> learn.
    """

    kind: ClassVar[str]
    # defaults of the closed-window config where they differ from the class's (see registry.py)
    config_defaults: ClassVar[Mapping[str, Any]] = {}

    name: Annotated[str | None, Field(min_length=1, max_length=64, description="defaults to the kind")] = field(
        default=None, kw_only=True)
    last: int | None = learned(None)  # grid index of the newest window seen

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(eq=False)(cls)  # the fields are the parameters: no __init__ to write

    def __post_init__(self) -> None:
        _params_model(type(self)).model_validate(self._get_params())  # checks only: values stay as given
        if self.name is None:
            self.name = self.default_name(self._get_params())
        self._validate()

    # --- parameters (river: read back from __init__) ---------------------------------------------
    def _get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in parameters(type(self))}

    def params(self) -> dict[str, Any]:
        """The parameters, as ``__init__`` takes them (the name resolved)."""
        return self._get_params()

    def clone(self, **params: Any) -> Self:
        """A fresh (cold) detector with the same parameters, ``params`` changed."""
        return type(self)(**{**self._get_params(), **params})

    @classmethod
    def default_name(cls, params: Mapping[str, Any]) -> str:
        return cls.kind

    def _validate(self) -> None:
        """Rules between parameters (one parameter's range is in its annotation); raise ValueError."""

    # --- state ------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        out = {"kind": self.kind, "params": self._get_params()}
        for name in _learned(type(self)):
            out[name] = _plain(getattr(self, name))
        return out

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        det = cls(**state["params"])
        for name, adapter in _learned(cls).items():
            if name not in state:
                continue  # saved before the field existed: it starts fresh
            value, fresh = adapter.validate_python(state[name]), getattr(det, name)
            if isinstance(fresh, deque):
                fresh.extend(value)  # keeps the bound the parameters gave it
            else:
                setattr(det, name, value)
        return det

    # --- update: guard -> judge -> learn ----------------------------------------------------------
    def update(self, window: ClosedWindow) -> Verdict | None:
        index = window.index
        if self.last is not None:
            if index <= self.last:
                return None  # redelivered or out of order: ignored
            if index > self.last + 1:
                self._missed(index - self.last - 1)
        self.last = index
        x = self._guard(window)
        if x is None:
            return None
        verdict = self._judge(window, x) if self._warm() else None
        self._learn(window, x, verdict)
        return verdict

    def _missed(self, n: int) -> None:
        """``n`` windows of the grid passed with no closed window (none had events)."""

    def _guard(self, window: ClosedWindow) -> Any:
        """What to judge and learn from this window; None skips it (no verdict, nothing learned)."""
        return window

    def _warm(self) -> bool:
        """Whether enough has been learned to judge."""
        return True

    def _judge(self, window: ClosedWindow, x: Any) -> Verdict:
        raise NotImplementedError

    def _learn(self, window: ClosedWindow, x: Any, verdict: Verdict | None) -> None:
        """Fold the window in; ``verdict`` is None while cold."""
        raise NotImplementedError


@functools.cache
def parameters(cls: type[OnlineDetector]) -> dict[str, tuple[Any, Any]]:
    """``{name: (annotation, default)}`` for the parameters of ``cls.__init__``."""
    hints = get_type_hints(cls, include_extras=True)
    sig = inspect.signature(cls.__init__).parameters
    return {p.name: (hints[p.name], p.default) for p in list(sig.values())[1:]}


@functools.cache
def _params_model(cls: type) -> type[BaseModel]:
    return create_model(f"{cls.__name__}Params", **parameters(cls))


@functools.cache
def _learned(cls: type) -> dict[str, TypeAdapter]:
    hints = get_type_hints(cls)
    return {f.name: TypeAdapter(hints[f.name]) for f in fields(cls) if not f.init}


def _plain(value: Any) -> Any:
    """A JSON-able copy of a learned field: containers become lists (their items are all alike)."""
    if not isinstance(value, (list, tuple, deque)):
        return value
    if value and isinstance(value[0], (list, tuple, deque)):
        return [_plain(v) for v in value]
    return list(value)


def sentiment_sample(window: ClosedWindow) -> tuple[float, float]:
    """(mean sentiment, sampling variance of that mean): per-event variance / n, 0 when unknown."""
    s2 = window.sentiment_event_var
    return window.sentiment_mean, (s2 / window.count if s2 is not None else 0.0)
