"""The fusion model served by the real Triton equals the same artifact run in-process, row by row;
text-only, image-only and fused inputs work, and a malformed image fails only its own row."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bw_triton import infer, sample_images

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "triton_repo" / "models" / "fusion" / "1" / "artifact"


def test_served_equals_in_process_for_every_modality_mix(stack):
    import onnxruntime as ort

    from babelwatch.model.preprocess import Preprocessor

    imgs = sample_images(3)
    texts = ["Tesla recalls two million cars after a fatal crash", "特斯拉股价大涨，季度利润创新高",
             "", "トヨタ、過去最高益を更新", "Airbus livre un nombre record d'avions", "Die Aktie fällt"]
    images = [b"", imgs[0], imgs[1], b"", b"\x89PNG this is not really a png", imgs[2]]
    served = infer(stack.triton_grpc_url, texts, images)

    pre = Preprocessor.from_dir(ARTIFACT)
    session = ort.InferenceSession(str(ARTIFACT / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = pre(texts, [im or None for im in images])
    local = session.run(["probs"], batch.feeds)[0]

    np.testing.assert_allclose(served["PROBS"], local, atol=1e-5)
    np.testing.assert_allclose(served["PROBS"].sum(axis=1), 1.0, atol=1e-5)
    # bit 1 = text, bit 2 = image: text-only, fused, image-only, text-only, bad image -> text, fused
    assert served["MODALITIES"].ravel().tolist() == [1, 3, 2, 1, 1, 3]
    errors = [e.decode() for e in served["ERROR"].ravel()]
    assert errors[4].startswith("image: ") and not any(errors[:4]) and not errors[5]


def test_sentiment_is_right_on_clear_cases_in_several_languages(stack):
    texts = ["Profits soared and the shares hit a record high, fantastic results",
             "The company collapsed into bankruptcy and investors lost everything",
             "利润大幅增长，股价创历史新高", "公司破产，投资者损失惨重",
             "Las ganancias se dispararon y las acciones alcanzaron un máximo histórico",
             "La empresa quebró y los inversores lo perdieron todo"]
    probs = infer(stack.triton_grpc_url, texts, [b""] * len(texts))["PROBS"]
    labels = ["negative", "neutral", "positive"]
    got = [labels[int(i)] for i in probs.argmax(axis=1)]
    assert got == ["positive", "negative"] * 3
