"""Detector verdicts -> lifecycle observations.

An alert's label set is (topic, language, detector, window, severity) plus any extra labels the
caller adds (the pipeline adds ``stage``, see ``workers.alerts``); ``window`` is the window SHAPE
(e.g. ``60s``), not its start, so consecutive anomalous windows are one alert that stays firing
rather than a new alert per window. Because severity is a label, one verdict gives one
observation per severity: active for the verdict's severity, inactive for the others, so an alert
that escalates from warning to critical resolves the warning one (each severity is its own alert,
like two Prometheus rules).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from workers.alerting.lifecycle import Observation

SEVERITIES: tuple[str, ...] = ("warning", "critical")


def severity_of(score: float, threshold: float) -> str:
    """The pipeline's rule: critical at twice the threshold."""
    return "critical" if score >= 2 * threshold else "warning"


def alert_labels(topic: str, lang: str, detector: str, window_s: int, severity: str,
                 extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**(extra or {}), "topic": topic, "language": lang, "detector": detector,
            "window": f"{int(window_s)}s", "severity": severity}


def observations_for(topic: str, lang: str, window_s: int, window_start: float, verdict: Any,
                     samples: Sequence[str] = (), extra_labels: Mapping[str, str] | None = None,
                     stories: Sequence[Mapping[str, Any]] = ()) -> list[Observation]:
    """Observations for one detector verdict (``workers.detectors.base.Verdict``) on one window.

    ``samples``: a few sample event ids (or short texts) kept in the annotations.
    ``stories``: the stories behind it (``workers.alerting.story_notes.story_annotation``), if any.
    ``extra_labels``: more identity labels (the pipeline adds ``stage``: ``open`` for the early alarm
    on a filling window, ``closed`` for the detectors on final windows, so the two never share an alert).
    """
    active_sev = severity_of(verdict.score, verdict.threshold) if verdict.anomalous else None
    annotations = {
        "value": verdict.value,
        "baseline": verdict.baseline,
        "score": round(float(verdict.score), 3),
        "threshold": verdict.threshold,
        "window_start": window_start,
        "summary": verdict.message,
        "sample_events": list(samples)[:5],
    }
    if stories:
        annotations["stories"] = list(stories)[:3]
    return [
        Observation(
            alert_labels(topic, lang, verdict.detector, window_s, sev, extra_labels),
            active=sev == active_sev,
            annotations=annotations if sev == active_sev else None,
        )
        for sev in SEVERITIES
    ]
