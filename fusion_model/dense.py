"""The fixed-layout ("dense") graph that the GPU variant serves through TensorRT.

The CPU graph packs images (``pixel_values [N,3,H,W]``, N = rows that have one) so a text-only batch
costs no image-encoder time. TensorRT engines and Triton's batcher need every tensor to share the
batch dimension, so the GPU graph takes the same modules with::

    input_ids      INT32 [batch, seq]         (TensorRT's native index type; cast to int64 inside)
    attention_mask INT32 [batch, seq]
    pixel_values   FP32  [batch, 3, H, W]     zeros in rows without an image
    has_image      FP32  [batch]

and returns the same ``probs`` [batch, 3] and ``gates`` [batch, 2]. A placeholder row's image
features are multiplied by has_image = 0, so the fusion still takes its learned "no image" vector:
outputs equal the packed graph's (checked by ``export_dense``, max |diff| within 1e-4).

The numpy side of that layout (packed feeds -> dense feeds, length buckets) is in
``dense_layout``, which the Triton preprocessing step imports without torch.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fusion_model.dense_layout import SEQ_BUCKETS, dense_feeds, pad_to_bucket
from fusion_model.export import DYNAMIC_AXES
from fusion_model.fusion import FusionModel
from fusion_model.preprocess import INPUT_NAMES, OUTPUT_NAMES

log = logging.getLogger(__name__)

DENSE_FILE = "model_dense.onnx"
# bump when the dense graph's definition changes: cached exports of another format are redone
DENSE_FORMAT = 1
# as the packed graph's, except that images follow the batch (one slot per row)
DENSE_DYNAMIC_AXES = {**DYNAMIC_AXES, "pixel_values": {0: "batch"}}


class DenseFusionModel(nn.Module):
    """``FusionModel``'s modules with one image slot per row (see the module docstring)."""

    def __init__(self, packed: FusionModel) -> None:
        super().__init__()
        self.text_encoder = packed.text_encoder
        self.image_encoder = packed.image_encoder
        self.fusion = packed.fusion

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor,
                has_image: torch.Tensor):
        mask = attention_mask.to(torch.int64)
        text_emb = self.text_encoder(input_ids.to(torch.int64), mask)
        has_text = (mask.sum(dim=1) > 0).to(text_emb.dtype)
        image_emb = self.image_encoder(pixel_values) * has_image.to(text_emb.dtype).unsqueeze(-1)
        logits, gates = self.fusion(text_emb, image_emb, has_image, has_text, return_gates=True)
        return torch.softmax(logits, dim=-1), gates


def load_packed_model(artifact_dir: Path) -> FusionModel:
    """Rebuild the torch ``FusionModel`` of an artifact from its card (encoder names) and fusion.pt."""
    from fusion_model.encoders import load_image_encoder, load_text_encoder
    from fusion_model.train import load_fusion

    card = json.loads((Path(artifact_dir) / "model_card.json").read_text(encoding="utf-8"))
    arch = card["architecture"]
    text = load_text_encoder(arch["text_encoder"]["name"], max_length=int(arch["text_encoder"]["max_length"]))
    image = load_image_encoder(arch["image_encoder"]["name"])
    return FusionModel(text.module(), image.module(), load_fusion(Path(artifact_dir) / "fusion.pt")).eval()


def export_dense(artifact_dir: Path, out_dir: Path, opset: int = 17, atol: float = 1e-4) -> dict:
    """Export ``model_dense.onnx`` for ``artifact_dir`` into ``out_dir`` and prove it equal to the
    artifact's own ``model.onnx`` on mixed batches (text+image, text only, image only, bad image).

    Returns the report (also written as ``out_dir/dense.json``). Written to a temporary sibling and
    renamed, so a half-written export is never seen.
    """
    import warnings

    from fusion_model.cachedir import publish_dir
    from fusion_model.export import ort_session
    from fusion_model.preprocess import Preprocessor

    artifact_dir, out_dir = Path(artifact_dir), Path(out_dir)
    pre = Preprocessor.from_dir(artifact_dir)
    model = DenseFusionModel(load_packed_model(artifact_dir)).eval()
    batches = check_batches(pre)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        example = dense_feeds(batches[1].feeds)
        t0 = time.perf_counter()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, tuple(torch.from_numpy(example[k]) for k in INPUT_NAMES), str(tmp / DENSE_FILE),
                              dynamo=False, opset_version=opset, input_names=list(INPUT_NAMES),
                              output_names=list(OUTPUT_NAMES), dynamic_axes=DENSE_DYNAMIC_AXES,
                              do_constant_folding=True)
        export_s = time.perf_counter() - t0
        packed = ort_session(artifact_dir / "model.onnx", threads=2)
        dense = ort_session(tmp / DENSE_FILE, threads=2)
        worst, rows = 0.0, 0
        for b in batches:
            ref = packed.run(["probs"], b.feeds)[0]
            ids, mask = pad_to_bucket(b.feeds["input_ids"], b.feeds["attention_mask"], pre.text.pad_id)
            feeds = dense_feeds({**b.feeds, "input_ids": ids, "attention_mask": mask})
            got = dense.run(["probs"], feeds)[0]
            worst = max(worst, float(np.abs(got - ref).max()))
            rows += len(ref)
        report = {"format": DENSE_FORMAT, "artifact": str(artifact_dir), "rows": rows, "max_abs_diff_probs_vs_packed": worst,
                  "atol": atol, "export_seconds": round(export_s, 1), "opset": opset,
                  "inputs": {"input_ids": "INT32 [batch, seq]", "attention_mask": "INT32 [batch, seq]",
                             "pixel_values": "FP32 [batch, 3, H, W]", "has_image": "FP32 [batch]"},
                  "seq_buckets": list(SEQ_BUCKETS)}
        if worst > atol:
            raise AssertionError(f"dense graph differs from the packed one: {report}")
        (tmp / "dense.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        publish_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("dense graph %s: max |diff| vs packed %.2e on %d rows", out_dir / DENSE_FILE, worst, rows)
    return report


def check_batches(pre, seed: int = 0) -> list:
    """Mixed batches from the shipped demo stream and synthetic images: sizes 1, 7, 32."""
    from fusion_model.synthetic import synthetic_image

    texts = demo_texts()
    rng = np.random.default_rng(seed)
    images = [synthetic_image(int(rng.integers(3)), rng) for _ in range(8)]
    batches, i = [], 0
    for bs in (1, 7, 32, 32):
        chunk = texts[i:i + bs]
        i += bs
        imgs = []
        for j in range(len(chunk)):
            r = j % 5
            imgs.append(images[j % len(images)] if r in (1, 2) else (b"not an image" if r == 3 else None))
            if r == 2:
                chunk[j] = ""  # image only
        batches.append(pre(chunk, imgs))
    return batches


def demo_texts() -> list[str]:
    from fusion_model.corpora import sample_objects

    return [ev["text"] for ev in sample_objects() if isinstance(ev.get("text"), str) and ev["text"]]
