"""``--json`` on the benchmarks: the same figures as the tables, as data a script can read."""
from __future__ import annotations

import json
import subprocess
import sys

from babelwatch.bench.pipeline import LatencyResult, PhaseResult, report, report_json
from contracts.settings import Settings


def test_bench_detectors_json_is_one_object_with_every_cell():
    out = subprocess.run([sys.executable, "-m", "babelwatch", "bench", "detectors", "--streams", "6", "--days", "2",
                          "--json"], capture_output=True, text=True, timeout=300, check=True).stdout
    data = json.loads(out)  # one JSON document, nothing else on stdout
    assert data["streams"] == 6 and data["days"] == 2 and data["windows"] > 0
    kinds = {(r["detector"], r["kind"]) for r in data["detectors"]}
    assert len(kinds) == len(data["detectors"]) >= 5
    for r in data["detectors"]:
        assert r["recall"] is None or 0.0 <= r["recall"] <= 1.0
        assert r["false_alarms_per_1k"] >= 0
    assert 0.0 <= data["story_burst"]["recall"] <= 1.0


def test_pipeline_report_json_carries_the_table_figures():
    results = [PhaseResult("(a) raw aiokafka loop", 1000, 0.5, {"worker": 0.0, "broker": 0.01, "bench": 0.02}),
               PhaseResult("(b) pipeline, model cheap", 1000, 2.0, {"worker": 0.1, "broker": 0.02, "bench": 0.01})]
    lat = LatencyResult(3, 100.0, [10.0, 20.0, 30.0], [5.0, 6.0, 7.0])
    s = Settings()
    data = report_json(results, lat, s, ("0.1", "0.2"))
    assert json.loads(json.dumps(data)) == data
    b = data["phases"][1]
    assert b["events_per_s"] == 500.0 and b["ratio_vs_raw"] == 0.25
    assert b["cpu_us_per_event"]["worker"] == 100.0
    assert data["latency_ms"]["p50"] == 20.0 and data["latency_ms"]["max"] == 30.0
    assert "ratio (b)/(a) = 0.250" in report(results, lat, s, ("0.1", "0.2"))  # the table says the same


def test_soak_report_json_has_the_trend_per_component():
    from babelwatch.bench.soak import MIB, SoakSample, report_json

    samples = [SoakSample(t=float(i), produced=i * 1000, scored=i * 1000,
                          rss={"worker": int((100 + i * 0.01) * MIB), "triton": int(80 * MIB)}) for i in range(1, 21)]
    data = report_json(samples, 0.2, 20_000)
    assert json.loads(json.dumps(data)) == data
    assert data["scored"] == 20_000 and data["components"]["notifier"] is None
    w = data["components"]["worker"]
    assert w["first_mib"] == 100.01 and 0 <= w["growth_pct"] < 1 and data["met"] is True
    grown = [SoakSample(s.t, s.produced, s.scored, {"worker": int((100 + s.t * 5) * MIB)}) for s in samples]
    assert report_json(grown, 0.2, 20_000)["met"] is False  # +5 MiB per sample: far past the 5 % goal
