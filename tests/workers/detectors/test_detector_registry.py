"""Per-topic detector configuration (workers/detectors/registry.py)."""
from __future__ import annotations

import bw_paths
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from workers.detectors.base import ClosedWindow, WindowDetector
from workers.detectors.cusum import Cusum
from workers.detectors.registry import (
    CusumSpec, DetectorConfig, SentimentShiftSpec, TopicProfile, VolumeSpikeSpec, build_detectors,
    detector_from_state, restore_detectors, snapshot,
)
from workers.detectors.sentiment_shift import SentimentShift
from workers.detectors.volume_spike import VolumeSpike


def config(**topics) -> DetectorConfig:
    return DetectorConfig.model_validate({"default": {"window_s": 300}, "topics": topics})


def test_default_profile_builds_the_three_detectors():
    dets = build_detectors(DetectorConfig(), "anything")
    assert [d.name for d in dets] == ["volume_spike", "sentiment_shift", "cusum"]
    assert [type(d) for d in dets] == [VolumeSpike, SentimentShift, Cusum]
    assert all(isinstance(d, WindowDetector) for d in dets)
    assert DetectorConfig().resolve("x").window_s == 60


def test_each_call_builds_fresh_detectors():
    cfg = DetectorConfig()
    a, b = build_detectors(cfg, "T"), build_detectors(cfg, "T")
    assert all(x is not y for x, y in zip(a, b))


def test_season_is_configured_in_seconds():
    vs = build_detectors(config(), "T")[0]
    assert vs.season == 86_400 // 300 and vs.seasons == 3
    vs60 = build_detectors(config(AAPL={"window_s": 60}), "AAPL")[0]
    assert vs60.season == 1440
    flat = build_detectors(config(T={"params": {"volume_spike": {"season_s": 0}}}), "T")[0]
    assert flat.season == 0


def test_exact_topic_beats_globs():
    cfg = config(**{"AAPL": {"params": {"volume_spike": {"threshold": 9}}},
                    "AA*": {"params": {"volume_spike": {"threshold": 7}}}})
    assert cfg.match("AAPL") == "AAPL"
    assert build_detectors(cfg, "AAPL")[0].threshold == 9
    assert build_detectors(cfg, "AAL")[0].threshold == 7
    assert cfg.match("MSFT") is None
    assert build_detectors(cfg, "MSFT")[0].threshold == VolumeSpikeSpec().threshold


def test_most_specific_glob_wins_and_ties_go_to_the_first():
    cfg = config(**{"crypto:*": {"window_s": 120}, "crypto:btc*": {"window_s": 30}, "*:btc*": {"window_s": 45}})
    assert cfg.match("crypto:btc-usd") == "crypto:btc*"
    assert cfg.resolve("crypto:eth").window_s == 120
    tie = config(**{"a?": {"window_s": 10}, "?b": {"window_s": 20}})
    assert tie.match("ab") == "a?"


def test_overrides_do_not_stack():
    cfg = config(**{"crypto:*": {"disable": ["cusum"]}, "crypto:btc": {"window_s": 30}})
    assert "cusum" in cfg.resolve("crypto:btc").names()  # only the exact override applies
    assert "cusum" not in cfg.resolve("crypto:eth").names()


def test_disable_and_tune_parameters():
    cfg = config(T={"disable": ["sentiment_shift"], "params": {"cusum": {"h": 12, "metric": "volume"}}})
    dets = build_detectors(cfg, "T")
    assert [d.name for d in dets] == ["volume_spike", "cusum"]  # the name stays as configured
    assert dets[1].h == 12 and dets[1].metric == "volume" and dets[1].k == CusumSpec().k
    assert cfg.resolve("T").window_s == 300


def test_override_replaces_the_list():
    cfg = config(T={"window_s": 60, "detectors": [
        {"kind": "cusum", "metric": "volume"},
        {"kind": "cusum", "name": "cusum_slow", "h": 20},
        {"kind": "sentiment_shift", "alpha": 0.3},
    ]})
    dets = build_detectors(cfg, "T")
    assert [d.name for d in dets] == ["cusum_volume", "cusum_slow", "sentiment_shift"]
    assert dets[2].alpha == 0.3


@pytest.mark.parametrize("bad", [
    {"topics": {"T": {"disable": ["nope"]}}},
    {"topics": {"T": {"params": {"nope": {"threshold": 3}}}}},
    {"topics": {"T": {"params": {"volume_spike": {"threshold": -1}}}}},
    {"topics": {"T": {"params": {"volume_spike": {"bogus": 1}}}}},
    {"default": {"detectors": [{"kind": "cusum"}, {"kind": "cusum"}]}},
    {"default": {"detectors": [{"kind": "isolation_forest"}]}},
    {"default": {"window_s": 0}},
    {"default": {"detectors": [{"kind": "volume_spike", "history": 3, "min_history": 6}]}},
    {"surprise": 1},
])
def test_invalid_configs_are_rejected(bad):
    with pytest.raises(ValidationError):
        DetectorConfig.model_validate(bad)


def test_season_too_short_for_the_window_is_an_error():
    cfg = DetectorConfig(default=TopicProfile(window_s=3600, detectors=[VolumeSpikeSpec(season_s=7200)]))
    with pytest.raises(ValueError):
        build_detectors(cfg, "T")


def test_from_file(tmp_path):
    p = tmp_path / "detectors.json"
    p.write_text(json.dumps({"default": {"window_s": 300}, "topics": {"news:*": {"disable": ["cusum"]}}}))
    cfg = DetectorConfig.from_file(p)
    assert cfg.resolve("news:fr").names() == ["volume_spike", "sentiment_shift"]
    assert DetectorConfig.model_validate_json(cfg.model_dump_json()) == cfg


def _windows(n: int = 120) -> list[ClosedWindow]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        c = int(rng.poisson(80 if i != 90 else 400))
        pos = int(rng.binomial(c, 0.4))
        out.append(ClosedWindow("T", "*", i * 300, 300, c, 0.75 * pos - 0.2 * c, None,
                                {"negative": c - pos, "neutral": 0, "positive": pos}))
    return out


def test_snapshot_and_restore_continue_the_series():
    cfg = config()
    ws = _windows()
    live = build_detectors(cfg, "T")
    for w in ws[:60]:
        for d in live:
            d.update(w)
    saved = json.loads(json.dumps(snapshot(live)))
    restored = restore_detectors(cfg, "T", saved)
    for w in ws[60:]:
        assert [d.update(w) for d in live] == [d.update(w) for d in restored]


def test_restore_starts_cold_when_the_config_changed_or_nothing_was_saved():
    ws = _windows()
    live = build_detectors(config(), "T")
    for w in ws[:60]:
        for d in live:
            d.update(w)
    saved = snapshot(live)
    changed = config(T={"params": {"volume_spike": {"threshold": 8}}})
    dets = restore_detectors(changed, "T", saved)
    assert dets[0].threshold == 8 and dets[0].state()["counts"] == []  # cold again
    assert dets[1].state() == saved["sentiment_shift"]  # unchanged detectors keep their state
    assert [d.state() for d in restore_detectors(config(), "T", None)] == [
        d.state() for d in build_detectors(config(), "T")
    ]


def test_detector_from_state_dispatches_on_kind():
    for d in build_detectors(config(), "T"):
        again = detector_from_state(json.loads(json.dumps(d.state())))
        assert type(again) is type(d) and again.state() == d.state()


def test_spec_defaults_match_detector_classes_for_shift_and_cusum():
    s, c = SentimentShiftSpec().build(60), CusumSpec().build(60)
    assert s.params() == SentimentShift().params()
    assert c.params() == Cusum().params()


def test_states_saved_before_the_base_class_still_restore():
    """A Redis blob written by the detectors before the base class (tests/fixtures), then the
    windows after it: the restored detectors answer and save exactly what the old ones did."""
    fx = json.loads((bw_paths.FIXTURES / "detector_states_v1.json").read_text())
    cfg = DetectorConfig.model_validate(fx["config"])
    saved = orjson.loads(fx["blob"])
    dets = restore_detectors(cfg, "TSLA", saved)
    assert snapshot(dets) == saved  # nothing started cold
    verdicts = [d.update(ClosedWindow(**w)) for w in fx["windows"] for d in dets]
    assert [None if v is None else asdict(v) for v in verdicts] == fx["verdicts"]
    assert json.loads(orjson.dumps(snapshot(dets))) == fx["after"]
