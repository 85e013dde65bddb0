"""The pipeline's cheap per-event objects equal what pydantic itself builds: ``scored_model`` pins
the fields and private attributes it sets by hand (a pydantic upgrade that changes them fails here)."""
from __future__ import annotations

import orjson

from contracts.schema import Scored
from workers.pipeline import BatchResult, scored_model


def values(**over) -> dict:
    v = dict(id="e-1", topic="AAPL", source="news", lang="en", lang_detected=False, label="positive",
             probabilities={"negative": 0.1, "neutral": 0.2, "positive": 0.7}, sentiment=0.6,
             modalities=["text"], image_error=None, model="cheap:1", ts=1_700_000_000.5, scored_at=1_700_000_001.25,
             story=None)
    v.update(over)
    return v


def test_scored_model_is_model_construct():
    for v in (values(), values(lang="und", lang_detected=True, image_error="invalid_image: x", modalities=[])):
        fast, slow = scored_model(dict(v)), Scored.model_construct(**v)
        assert fast == slow
        assert fast.model_dump_json() == slow.model_dump_json()
        assert fast.model_dump() == slow.model_dump()
        assert fast.model_fields_set == slow.model_fields_set == set(Scored.model_fields)
        assert Scored.model_validate_json(fast.model_dump_json()) == slow  # valid as a Scored, too
        assert orjson.loads(fast.model_dump_json())["sentiment"] == v["sentiment"]


def test_scored_model_needs_every_field():
    assert set(values()) == set(Scored.model_fields)


def test_batch_result_merges_stage_timings():
    a, b = BatchResult(timings={"validate": 0.5, "score": 1.0}), BatchResult(timings={"validate": 0.25, "windows": 2.0})
    a.merge(b)
    assert a.timings == {"validate": 0.75, "score": 1.0, "windows": 2.0}
