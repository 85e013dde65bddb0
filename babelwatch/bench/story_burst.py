"""The ``story_burst`` entry of ``babelwatch bench detectors``: labelled synthetic story streams.

Per topic stream: background stories (a new one every few minutes, a handful of events over an
hour in one or two languages), injected bursts (a story reported 0.8-5 times a minute for 10-20
minutes in 3-5 languages) and decoys that must not fire: as fast but in one language, or in 3-5
languages but slow (0.1-0.3 a minute for an hour). Each event updates its story's snapshot exactly as the store does
(decayed rate, counts per language: ``workers.stories.record.join``) and the snapshot is fed to the
detector. Scored per story: recall (bursts alerted), precision (alerts that are bursts), delay
(minutes from a burst's first event to its alert). docs/design.md, "Stories".
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from workers.detectors.story_burst import StoryBurst
from workers.stories.record import Story, join
from workers.stories.rules import StoryRules
from workers.stories.items import StoryItem
from workers.stories.view import story_view

LANGS = ("en", "de", "fr", "es", "ja", "zh", "ko", "it")


@dataclass
class BurstReport:
    streams: int
    bursts: int
    background: int
    recall: float
    precision: float
    delay_min_median: float
    false_alarms_per_stream_hour: float
    seconds: float


def _events(rng: np.random.Generator, hours: float) -> tuple[list[tuple[float, int, str]], set[int], dict[int, float]]:
    """(ts, story number, lang) in time order; the burst story numbers; their start times."""
    span = hours * 3600
    out: list[tuple[float, int, str]] = []
    n = 0
    t = 0.0
    while t < span:  # background
        t += rng.exponential(240)
        langs = rng.choice(LANGS, size=int(rng.integers(1, 3)), replace=False)
        for _ in range(int(rng.integers(1, 7))):
            out.append((t + rng.uniform(0, 3600), n, str(rng.choice(langs))))
        n += 1
    bursts, starts = set(), {}
    # injected bursts (labelled) and two kinds of decoys: fast in one language, slow in many
    kinds = ["burst"] * int(rng.integers(1, 4)) + ["one_language"] * int(rng.integers(0, 3)) + \
            ["slow"] * int(rng.integers(0, 3))
    for kind in kinds:
        start = rng.uniform(1800, span - 1800)
        rate = {"burst": rng.uniform(0.8, 5.0), "one_language": rng.uniform(1.5, 5.0),
                "slow": rng.uniform(0.1, 0.3)}[kind] / 60
        length = rng.uniform(600, 1200) if kind != "slow" else 3600
        langs = rng.choice(LANGS, size=1 if kind == "one_language" else int(rng.integers(3, 6)), replace=False)
        t = start
        while t < start + length:
            out.append((t, n, str(rng.choice(langs))))
            t += rng.exponential(1 / rate)
        if kind == "burst":
            bursts.add(n)
            starts[n] = start
        n += 1
    return sorted(out), bursts, starts


def evaluate(seed: int = 0, n_streams: int = 40, hours: float = 6.0) -> BurstReport:
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    rules = StoryRules()
    found = alarms = false = n_bursts = n_background = 0
    delays: list[float] = []
    for _ in range(n_streams):
        events, bursts, starts = _events(rng, hours)
        det = StoryBurst()
        stories: dict[int, Story] = {}
        fired: set[int] = set()
        for k, (ts, sn, lang) in enumerate(events):
            st = stories.get(sn)
            if st is None:
                st = stories[sn] = Story(str(sn), "T", ts, ts, rate_ts=ts)
            join(st, StoryItem("T", None, f"e{k}", lang, "text", 0.0, None, ts), ts, 1.0, 0.0, rules)
            v = det.update(story_view(st.to_json(), rules.rate_tau_s), now=ts)
            if v is not None and v.anomalous:
                alarms += 1
                fired.add(sn)
                if sn in bursts:
                    delays.append((ts - starts[sn]) / 60)
                else:
                    false += 1
        found += len(fired & bursts)
        n_bursts += len(bursts)
        n_background += len(stories) - len(bursts)
    return BurstReport(n_streams, n_bursts, n_background, found / max(n_bursts, 1),
                       (alarms - false) / alarms if alarms else 1.0,
                       float(np.median(delays)) if delays else float("nan"),
                       false / (n_streams * hours), time.perf_counter() - t0)


def run(seed: int = 0) -> BurstReport:
    r = evaluate(seed)
    print(f"story_burst: {r.streams} topic streams x 6 h, {r.bursts} injected bursts among {r.background} "
          f"background stories: recall {r.recall:.2f}, precision {r.precision:.2f}, median delay "
          f"{r.delay_min_median:.1f} min, false alarms {r.false_alarms_per_stream_hour:.3f}/stream-hour "
          f"({r.seconds:.1f}s)")
    return r
