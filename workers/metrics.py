"""The worker's Prometheus metrics: definitions, and :meth:`WorkerMetrics.observe_batch`, which turns
one committed batch (a ``workers.pipeline.BatchResult``) into counters and histograms. Consumer lag
and liveness figures are read when scraped (:class:`SourceCollector`). Kafka-free; served by
stream/observe.py. Every label set is bounded (:class:`BoundedLabel`): never an event id or free
text. Metric list: README "Observability"; why: docs/design.md "Observability"."""
from __future__ import annotations

import json
import re
import time
from collections import Counter as Tally
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily

# the *_created series double the series count and no dashboard or rule here reads them
disable_created_metrics()

OTHER = "_other"
# label values we keep verbatim: short, printable, no spaces (topics, ISO codes, reasons)
_SAFE = re.compile(r"[A-Za-z0-9_.:\-/]{1,64}")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# label values known in advance start at 0, so rates and dashboards see them before the first event
STAGES = ("validate", "language", "images", "score", "windows", "stories", "detect", "produce")


class BoundedLabel:
    """A label's values, capped: the first ``limit`` distinct safe values are kept, every later or
    unsafe one becomes ``_other``. User data (event topics, language tags) cannot grow the series."""

    def __init__(self, limit: int, pattern: re.Pattern = _SAFE) -> None:
        self.limit = limit
        self.pattern = pattern
        self._kept: set[str] = set()

    def __call__(self, value: Any) -> str:
        value = "" if value is None else str(value)
        if value in self._kept:
            return value
        if len(self._kept) < self.limit and self.pattern.fullmatch(value):
            self._kept.add(value)
            return value
        return OTHER


def build_info(registry: CollectorRegistry, component: str, model: str, model_hash: str) -> Gauge:
    """``babelwatch_build_info{component,version,model,model_hash} 1``."""
    try:
        version = metadata.version("babelwatch")
    except metadata.PackageNotFoundError:
        version = "unknown"
    g = Gauge("babelwatch_build_info", "babelwatch build: version, model name and artifact hash",
              ["component", "version", "model", "model_hash"], registry=registry)
    g.labels(component, version, model, model_hash).set(1)
    return g


def model_hash(triton_repo: Path, model: str) -> str:
    """The served artifact's fingerprint (first 12 hex digits) from the local model repository's
    manifest, or ``unknown`` where the repository is not on this machine."""
    versions = sorted((p for p in (Path(triton_repo) / model).glob("*/artifact/manifest.json")),
                      key=lambda p: p.parent.parent.name)
    try:
        return str(json.loads(versions[-1].read_text())["fingerprint"])[:12]
    except (IndexError, OSError, ValueError, KeyError):
        return "unknown"


class WorkerMetrics:
    """Every per-batch metric of the worker, in its own registry (tests make as many as they like)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, kafka_topic: str, max_topics: int = 100,
                 max_langs: int = 64, clock: Callable[[], float] = time.time, windows: Iterable[str] = (),
                 detectors: Iterable[str] = ("volume_spike",)) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.kafka_topic = kafka_topic
        self.clock = clock
        self.topic = BoundedLabel(max_topics)
        self.lang = BoundedLabel(max_langs)
        self.name = BoundedLabel(256)  # detectors, stages, reasons, states, shapes: code-defined
        r = self.registry
        self.consumed = Counter("babelwatch_events_consumed_total", "records consumed, per Kafka topic",
                                ["topic"], registry=r)
        self.scored = Counter("babelwatch_events_scored_total", "events scored, per language and label",
                              ["lang", "label"], registry=r)
        self.dead = Counter("babelwatch_events_dead_lettered_total", "records dead-lettered, per reason",
                            ["reason"], registry=r)
        self.late = Counter("babelwatch_events_late_total", "scored events older than their topic's watermark "
                            "(not counted in windows), per event topic", ["topic"], registry=r)
        self.batch_size = Histogram("babelwatch_batch_size_events", "records per committed batch",
                                    buckets=SIZE_BUCKETS, registry=r)
        self.batch_seconds = Histogram("babelwatch_batch_duration_seconds", "wall time per batch, end to end",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.stage_seconds = Histogram("babelwatch_stage_duration_seconds", "wall time per batch stage "
                                       "(validate, language, images, score, windows, detect, produce, commit)",
                                       ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.windows_closed = Counter("babelwatch_windows_closed_total", "windows closed by the watermark, "
                                      "per window shape", ["window"], registry=r)
        self.verdicts = Counter("babelwatch_detector_verdicts_total", "detector verdicts, per detector and outcome",
                                ["detector", "outcome"], registry=r)
        self.transitions = Counter("babelwatch_alert_transitions_total", "alert notifications (lifecycle "
                                   "transitions), per state and detector", ["state", "detector"], registry=r)
        self.newest_event = Gauge("babelwatch_newest_event_timestamp_seconds", "newest event time applied, per "
                                  "event topic (this process)", ["topic"], registry=r)
        self.window_sentiment = Gauge("babelwatch_window_sentiment_mean", "mean sentiment of the newest closed "
                                      "window, per event topic, language and window shape",
                                      ["topic", "lang", "window"], registry=r)
        self.window_events = Gauge("babelwatch_window_events", "events in the newest closed window, per event "
                                   "topic, language and window shape", ["topic", "lang", "window"], registry=r)
        self.last_batch = Gauge("babelwatch_last_batch_timestamp_seconds", "when the last batch finished",
                                registry=r)
        self._consumed = self.consumed.labels(kafka_topic)
        for reason in _dead_letter_reasons():
            self.dead.labels(self.name(reason))
        for stage in STAGES:
            self.stage_seconds.labels(self.name(stage))
        for shape in windows:
            self.windows_closed.labels(self.name(shape))
        for det in detectors:
            for state in ("firing", "resolved"):
                self.transitions.labels(state, self.name(det))
            for outcome in ("anomalous", "normal"):
                self.verdicts.labels(self.name(det), outcome)
        self.registry.register(_EventTimeLag(self))
        self._newest: dict[str, float] = {}

    def observe_batch(self, result: Any, n: int, seconds: float) -> None:
        """One committed batch: ``result`` a BatchResult (or None), ``n`` records, ``seconds`` of wall time."""
        self._consumed.inc(n)
        self.batch_size.observe(n)
        self.batch_seconds.observe(seconds)
        self.last_batch.set(self.clock())
        if result is None:  # a batch the source finished without a result (nothing to count)
            return
        for stage, s in (getattr(result, "timings", None) or {}).items():
            self.stage_seconds.labels(self.name(stage)).observe(s)
        scored = result.scored
        for (lang, label), k in Tally((s.lang, s.label) for s in scored).items():
            self.scored.labels(self.lang(lang), self.name(label)).inc(k)
        for reason, k in Tally(d.reason for d in result.dead).items():
            self.dead.labels(self.name(reason)).inc(k)
        for topic, k in Tally(s.topic for s in result.late).items():
            self.late.labels(self.topic(topic)).inc(k)
        newest: dict[str, float] = {}
        for s in scored:
            if s.ts > newest.get(s.topic, float("-inf")):
                newest[s.topic] = s.ts
        for topic, ts in newest.items():
            t = self.topic(topic)
            if ts > self._newest.get(t, float("-inf")):
                self._newest[t] = ts
                self.newest_event.labels(t).set(ts)
        for w in result.closed:
            hop = getattr(w, "hop_s", 0)
            shape = self.name(f"{w.size_s}s" if hop in (0, w.size_s) else f"{w.size_s}s/{hop}s")
            self.windows_closed.labels(shape).inc()
            if w.count > 0:
                key = (self.topic(w.topic), self.lang(w.lang), shape)
                self.window_sentiment.labels(*key).set(w.sentiment_sum / w.count)
                self.window_events.labels(*key).set(w.count)
        for v in getattr(result, "verdicts", None) or ():
            self.observe_verdict(v)
        for a in result.alerts:
            self.transitions.labels(self.name(a.state), self.name(a.labels.get("detector"))).inc()

    def observe_verdict(self, verdict: Any) -> None:
        """A detector's verdict (``workers.detectors.base.Verdict``): anomalous or normal."""
        self.verdicts.labels(self.name(verdict.detector), "anomalous" if verdict.anomalous else "normal").inc()


def _dead_letter_reasons() -> tuple[str, ...]:
    from typing import get_args

    from contracts.schema import DeadLetter

    return get_args(DeadLetter.model_fields["reason"].annotation)


def window_shapes(window_s: int, extra_windows: str) -> list[str]:
    """The window shapes' label values (``60s``, ``300s/60s``) for the settings' windows."""
    out = [f"{window_s}s"]
    for w in (x.strip() for x in extra_windows.split(",")):
        if w:
            size, _, hop = w.partition("/")
            out.append(f"{int(size)}s" if not hop or int(hop) == int(size) else f"{int(size)}s/{int(hop)}s")
    return out


class ProbeCollector:
    """``babelwatch_live`` and ``babelwatch_ready`` (1/0): the probes' answers, for alerting rules."""

    def __init__(self, live: Callable[[], Any], ready: Callable[[], Any]) -> None:
        self.live = live
        self.ready = ready

    def describe(self):
        return list(self._families(False))

    def collect(self):
        return self._families(True)

    def _families(self, read: bool):
        live = GaugeMetricFamily("babelwatch_live", "1 while the liveness probe passes (0: stalled)")
        ready = GaugeMetricFamily("babelwatch_ready", "1 while the readiness probe passes")
        if read:
            live.add_metric([], 1 if self.live().ok else 0)
            ready.add_metric([], 1 if self.ready().ok else 0)
        yield live
        yield ready


class _EventTimeLag:
    """``babelwatch_event_time_lag_seconds{topic}``: now minus the newest event time applied, at scrape."""

    def __init__(self, m: WorkerMetrics) -> None:
        self.m = m

    def describe(self):
        return [GaugeMetricFamily("babelwatch_event_time_lag_seconds", "now minus the newest event time applied, "
                                  "per event topic", labels=["topic"])]

    def collect(self):
        g = GaugeMetricFamily("babelwatch_event_time_lag_seconds", "now minus the newest event time applied, "
                              "per event topic", labels=["topic"])
        now = self.m.clock()
        for topic, ts in list(self.m._newest.items()):
            g.add_metric([topic], max(0.0, now - ts))
        yield g


class SourceCollector:
    """Consumer lag and assignment, read from the batch source when scraped.

    ``lag()``: {(topic, partition): records behind (end offset - committed)}; ``assigned()``: the
    partitions this member holds; ``stalled_s()``: seconds since a batch finished (None: none yet)."""

    def __init__(self, lag: Callable[[], Mapping[tuple[str, int], int]], assigned: Callable[[], Iterable],
                 stalled_s: Callable[[], float | None] | None = None) -> None:
        self.lag = lag
        self.assigned = assigned
        self.stalled_s = stalled_s

    def describe(self):
        return list(self._families())

    def collect(self):
        return self._families(read=True)

    def _families(self, read: bool = False):
        lag = GaugeMetricFamily("babelwatch_consumer_lag_records", "end offset minus committed offset, per "
                                "assigned partition (fetch high-waters)", labels=["topic", "partition"])
        assigned = GaugeMetricFamily("babelwatch_assigned_partitions", "partitions this group member holds")
        since = GaugeMetricFamily("babelwatch_seconds_since_last_batch", "seconds since a batch finished "
                                  "(since start while none has)")
        if read:
            try:
                for (topic, partition), n in sorted(self.lag().items()):
                    lag.add_metric([str(topic), str(partition)], max(0, int(n)))
            except Exception:  # noqa: BLE001 - a scrape must not fail for one figure
                pass
            try:
                assigned.add_metric([], len(list(self.assigned())))
            except Exception:  # noqa: BLE001
                pass
            s = self.stalled_s() if self.stalled_s is not None else None
            if s is not None:
                since.add_metric([], s)
        yield lag
        yield assigned
        yield since
