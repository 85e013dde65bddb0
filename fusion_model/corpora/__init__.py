"""Data files shipped with the model: the hand-labelled ja/es/financial set (training) and the demo
stream (336 raw lines; its labelled events are a held-out test set, and the demo replays it)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve().parent
HANDLABELLED = HERE / "handlabelled.jsonl"
SAMPLE_EVENTS = HERE / "sample_events.jsonl"


def sample_objects(path: Path = SAMPLE_EVENTS) -> Iterator[dict]:
    """The sample's lines that are JSON objects (the deliberately broken lines are skipped)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj
