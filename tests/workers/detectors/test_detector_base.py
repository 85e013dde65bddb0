"""OnlineDetector (workers/detectors/base.py): a new detector is its fields and three hooks."""
from __future__ import annotations

import json
from typing import Annotated

import pytest
from pydantic import Field, ValidationError

from workers.detectors.base import ClosedWindow, OnlineDetector, Verdict, WindowDetector, learned
from workers.detectors.cusum import Cusum
from workers.detectors.registry import spec_model
from workers.detectors.sentiment_shift import SentimentShift
from workers.detectors.volume_spike import VolumeSpike


class RateJump(OnlineDetector):
    """A window's count against the running mean of the windows before it."""

    kind = "rate_jump"

    ratio: Annotated[float, Field(gt=1, description="count / mean that fires")] = 3.0
    min_history: Annotated[int, Field(ge=1, description="windows before the first verdict")] = 5
    n: int = learned(0)
    mean: float = learned(0.0)

    def _guard(self, window: ClosedWindow) -> int | None:
        return window.count or None  # an empty window says nothing about the rate

    def _warm(self) -> bool:
        return self.n >= self.min_history

    def _judge(self, window: ClosedWindow, count: int) -> Verdict:
        score = count / max(self.mean, 1.0)
        return Verdict(self.name, score, self.ratio, count, self.mean, score >= self.ratio)

    def _learn(self, window: ClosedWindow, count: int, verdict: Verdict | None) -> None:
        self.n += 1
        self.mean += (count - self.mean) / self.n


def cw(i: int, count: int) -> ClosedWindow:
    return ClosedWindow(topic="T", lang="*", start=i * 60, size_s=60, count=count)


def feed(det, counts, first: int = 0):
    return [det.update(cw(first + i, c)) for i, c in enumerate(counts)]


@pytest.mark.parametrize("det,name", [(VolumeSpike(), "volume_spike"), (SentimentShift(), "sentiment_shift"),
                                      (Cusum(), "cusum"), (Cusum(metric="volume"), "cusum_volume")])
def test_the_detectors_are_window_detectors_named_after_their_kind(det, name):
    assert isinstance(det, WindowDetector)
    assert det.name == name


def test_parameters_come_from_init():
    det = RateJump(4.0, name="rj")
    assert isinstance(det, WindowDetector)
    assert det.params() == det._get_params() == {"ratio": 4.0, "min_history": 5, "name": "rj"}
    assert RateJump().name == "rate_jump"
    assert repr(RateJump()) == "RateJump(name='rate_jump', ratio=3.0, min_history=5)"
    again = det.clone(min_history=2)
    assert again.params() == {"ratio": 4.0, "min_history": 2, "name": "rj"} and again.n == 0


@pytest.mark.parametrize("bad", [{"ratio": 1.0}, {"min_history": 0}, {"name": ""}, {"ratio": "high"}])
def test_parameters_are_checked_against_their_annotations(bad):
    with pytest.raises(ValueError):
        RateJump(**bad)


def test_values_stay_as_given():
    assert RateJump(ratio=4).ratio == 4 and type(RateJump(ratio=4).ratio) is int


def test_update_is_guard_judge_learn():
    det = RateJump(min_history=3)
    assert feed(det, [10, 10, 10]) == [None] * 3  # cold: learned, not judged
    v = det.update(cw(3, 40))
    assert v.anomalous and v.score == 4.0 and v.baseline == 10.0
    assert det.n == 4  # judged against the state BEFORE folding the window in
    before = det.state()
    assert det.update(cw(5, 0)) is None  # the guard skips it: nothing learned, position kept
    assert det.state() == {**before, "last": 5}
    assert det.update(cw(4, 500)) is None and det.update(cw(5, 500)) is None  # not after the last
    assert det.state() == {**before, "last": 5}


def test_missed_windows_are_reported():
    gaps = []

    class Counting(RateJump):
        def _missed(self, n: int) -> None:
            gaps.append(n)

    det = Counting()
    feed(det, [10], first=0)
    feed(det, [10], first=4)
    feed(det, [10], first=5)
    assert gaps == [3]


def test_state_is_the_learned_fields_and_round_trips():
    a = RateJump(min_history=3, name="rj")
    feed(a, [10, 12, 9, 11])
    state = json.loads(json.dumps(a.state()))
    assert state == {"kind": "rate_jump", "params": {"ratio": 3.0, "min_history": 3, "name": "rj"},
                     "last": 3, "n": 4, "mean": 10.5}
    b = RateJump.from_state(state)
    counts = [10, 50, 0, 11, 40]
    assert feed(a, counts, first=4) == feed(b, counts, first=4)
    assert a.state() == b.state()
    assert RateJump.from_state({"kind": "rate_jump", "params": {}}).state() == RateJump().state()


def test_config_entry_comes_from_the_same_declaration():
    spec = spec_model(RateJump)
    built = spec.model_validate({"kind": "rate_jump", "ratio": 5}).build(60)
    assert type(built) is RateJump and built.params() == {"ratio": 5.0, "min_history": 5, "name": "rate_jump"}
    assert spec.model_fields["ratio"].description == "count / mean that fires"
    with pytest.raises(ValidationError):
        spec.model_validate({"kind": "rate_jump", "ratio": 0.5})
    with pytest.raises(ValidationError):
        spec.model_validate({"kind": "rate_jump", "window": 3})
