"""The text embedding the fusion model already computes, returned for stories: the built artifact's
extra ONNX output, the served EMBEDDING column (language-centered, float16, zeros without text) and
the in-process scorer's ``ScoreOutput.embedding``."""
from __future__ import annotations

import asyncio
import json

import bw_paths
import numpy as np
import pytest

from bw_images import encoded
from fusion_model.serving import (ANY_LANG, CENTERS_FILE, EMBEDDING_OUTPUT, embedding_centers, embedding_column,
                                  load_centers)
from workers.scoring import ScoreInput, row_embeddings

ARTIFACT = bw_paths.REPO / "triton_repo" / "models" / "fusion" / "1" / "artifact"


def test_embedding_column_centers_by_language_and_leaves_rows_without_text_empty():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(4, 8)).astype(np.float32)
    centers = {"en": np.ones(8, np.float32), ANY_LANG: np.full(8, 0.5, np.float32)}
    col = embedding_column(emb, np.array([[1], [3], [2], [1]]), ["en", "xx", "en", "und"], centers)
    assert col.dtype == np.float16 and col.shape == (4, 8)
    assert not col[2].any()  # image only: no text used
    expect0 = (emb[0] - 1) / np.linalg.norm(emb[0] - 1)
    expect1 = (emb[1] - 0.5) / np.linalg.norm(emb[1] - 0.5)  # unknown language: the mean over all
    np.testing.assert_allclose(col[0], expect0, atol=2e-3)
    np.testing.assert_allclose(col[1], expect1, atol=2e-3)
    # without centers (an older artifact): the embedding as the graph gives it
    np.testing.assert_allclose(embedding_column(emb, np.ones(4, np.int32))[3], emb[3], atol=2e-3)


def test_row_embeddings_refuse_what_cannot_be_used():
    emb = np.ones((4, 8), np.float16)
    emb[1] = 0
    emb[2, 0] = np.inf
    rows = row_embeddings(emb, np.array([1, 1, 1, 2]), 4)
    assert rows[0] is not None and abs(float(np.linalg.norm(rows[0])) - 1) < 1e-6 and rows[0].dtype == np.float32
    assert rows[1] is None and rows[2] is None and rows[3] is None  # zero, not finite, image only
    assert row_embeddings(None, np.array([1, 1]), 2) == [None, None]


def test_centers_are_the_per_language_means():
    emb = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    c = embedding_centers(emb, ["en", "en", "de"])
    assert c["en"] == [2.0, 0.0] and c["de"] == [0.0, 2.0] and c[ANY_LANG] == pytest.approx([4 / 3, 2 / 3])


def test_the_built_artifact_exports_the_text_embedding_and_its_centers():
    import onnxruntime as ort

    session = ort.InferenceSession(str(ARTIFACT / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = {o.name: o.shape for o in session.get_outputs()}
    assert EMBEDDING_OUTPUT in outputs and outputs[EMBEDDING_OUTPUT][1] == 384
    centers = load_centers(ARTIFACT)
    assert centers is not None and {"en", "de", "fr", "es", "ja", "zh", ANY_LANG} <= set(centers)
    assert all(v.shape == (384,) for v in centers.values())
    card = json.loads((ARTIFACT / "model_card.json").read_text())
    assert card["onnx"]["verification"]["max_abs_diff_text_emb"] <= card["onnx"]["verification"]["atol"]
    assert (ARTIFACT / CENTERS_FILE).is_file()


def test_in_process_scorer_returns_embeddings_in_the_same_call():
    from workers.scoring.inprocess import InProcessScorer

    scorer = InProcessScorer(ARTIFACT, threads=1)
    image = encoded("PNG")
    rows = [ScoreInput("Tesla recalls two million cars over Autopilot safety", None, "en"),
            ScoreInput("Tesla ruft zwei Millionen Autos wegen Autopilot-Sicherheit zurück", None, "de"),
            ScoreInput("Apple opens its first store in Malaysia", None, "en"),
            ScoreInput("", image, "und"),                                  # image only
            ScoreInput("", None, "und"),                                   # nothing
            ScoreInput("Toyota " * 20_000, None, "en")]                    # 140k chars
    out = asyncio.run(scorer.score(rows))
    assert [o.embedding is None for o in out] == [False, False, False, True, True, False]
    e = [o.embedding for o in out]
    for v in (e[0], e[1], e[2], e[5]):
        assert v.shape == (384,) and v.dtype == np.float32 and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    # the same news across languages is closer than other news in the same language
    assert float(e[0] @ e[1]) > float(e[0] @ e[2]) + 0.1
    # the probabilities are those of a call without the embedding
    probs = scorer.session.run(["probs"], scorer.pre([r.text for r in rows], [r.image for r in rows]).feeds)[0]
    np.testing.assert_allclose([[o.probabilities[k] for k in ("negative", "neutral", "positive")] for o in out],
                               probs, atol=1e-5)
