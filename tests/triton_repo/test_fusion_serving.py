"""The fusion model served by the real Triton equals the same artifact run in-process, row by row;
text-only, image-only and fused inputs work, and a malformed image fails only its own row."""
from __future__ import annotations

import bw_paths
from pathlib import Path

import numpy as np
import pytest

from bw_triton import infer, sample_images

pytestmark = pytest.mark.integration

REPO = bw_paths.REPO
ARTIFACT = REPO / "triton_repo" / "models" / "fusion" / "1" / "artifact"


def test_served_equals_in_process_for_every_modality_mix(stack):
    import onnxruntime as ort

    from fusion_model.preprocess import Preprocessor

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


def test_one_request_of_image_traps_scores_every_row(stack):
    """Every trap and valid rows in ONE request: the request succeeds, every valid row is scored as
    usual, each trap row has its own reason and is scored on its text like a text-only row."""
    import time

    from bw_images import animated_gif, image_traps

    imgs = sample_images(2)
    traps = image_traps()
    texts, images, expect = [], [], []  # expect: ("ok", modalities) or ("trap", error prefix)
    for i, (name, data, reason) in enumerate(traps):
        texts.append(f"Row {i}: shares jump after the {name} results beat every estimate")
        images.append(data)
        expect.append(("trap", reason))
        texts.append(["Tesla recalls two million cars", "特斯拉股价大涨", "トヨタ、過去最高益"][i % 3])
        images.append([imgs[0], b"", imgs[1]][i % 3])  # fused, text-only, fused
        expect.append(("ok", [3, 1, 3][i % 3]))
    texts += ["An animated GIF: only its first frame is used", "A zero-byte image is no image", ""]
    images += [animated_gif(frames=30), b"", imgs[0]]
    expect += [("ok", 3), ("ok", 1), ("ok", 2)]

    t0 = time.monotonic()
    served = infer(stack.triton_grpc_url, texts, images)
    elapsed = time.monotonic() - t0
    errors = [e.decode() for e in served["ERROR"].ravel()]
    modalities = served["MODALITIES"].ravel().tolist()
    assert served["PROBS"].shape == (len(texts), 3)
    np.testing.assert_allclose(served["PROBS"].sum(axis=1), 1.0, atol=1e-5)
    for i, (kind, what) in enumerate(expect):
        if kind == "ok":
            assert errors[i] == "" and modalities[i] == what, (i, texts[i], errors[i], modalities[i])
        else:
            assert errors[i].startswith(what) and modalities[i] == 1, (i, texts[i], errors[i], modalities[i])
    # a trap row is scored exactly as its text alone
    trap_rows = [i for i, (kind, _) in enumerate(expect) if kind == "trap"]
    alone = infer(stack.triton_grpc_url, [texts[i] for i in trap_rows], [b""] * len(trap_rows))
    np.testing.assert_allclose(served["PROBS"][trap_rows], alone["PROBS"], atol=1e-4)
    # before: the 7000x7000 PNG alone took 2.3-8 s; now all traps and 23 rows of model work together
    assert elapsed < 10, elapsed


def test_a_big_png_costs_milliseconds_not_seconds(stack):
    import time

    from bw_images import png

    text = ["Quarterly results beat estimates"]
    infer(stack.triton_grpc_url, text, [b""])  # warm
    t0 = time.monotonic()
    infer(stack.triton_grpc_url, text, [b""])
    base = time.monotonic() - t0
    t0 = time.monotonic()
    got = infer(stack.triton_grpc_url, text, [png(7000, 7000, 6)])
    big = time.monotonic() - t0
    assert got["ERROR"].ravel()[0].decode().startswith("image: image too large")
    assert big - base < 0.5, (big, base)  # refused from the header; decoding it took 2.3-8 s before
