"""The local demo and its sample stream (``sample_events.jsonl``, made by ``sample_source.py``)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

SAMPLE = Path(__file__).resolve().parent / "sample_events.jsonl"


def sample_objects(path: Path = SAMPLE) -> Iterator[dict]:
    """The sample's lines that are JSON objects (the deliberately broken lines are skipped)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield obj
