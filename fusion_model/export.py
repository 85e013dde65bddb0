"""ONNX export of the whole model (encoders + fusion + head) and the served artifact directory.

``export_onnx`` traces ``FusionModel`` (TorchScript exporter, opset >= 17) with dynamic axes:
``batch`` and ``seq`` for the text inputs, ``num_images`` for the packed images.
``verify_onnx`` runs onnxruntime and torch on the same feeds and reports the largest difference.
``write_artifact`` writes, atomically::

    <dir>/model.onnx         the graph (inputs/outputs: see fusion_model.preprocess)
    <dir>/tokenizer/         tokenizer.json (+ HF tokenizer files)
    <dir>/preprocess.json    text (max_length, prefix, pad id) and image (resize, crop, mean, std) settings
    <dir>/labels.json        ["negative", "neutral", "positive"]
    <dir>/fusion.pt          the trained fusion + head alone (torch state dict + config)
    <dir>/model_card.json    data, languages, metrics, limits, verification, throughput
    <dir>/manifest.json      files, sizes, sha256 of model.onnx, fingerprint (written last)
"""
from __future__ import annotations

from fusion_model.cachedir import publish_dir
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from fusion_model.fusion import LABELS, FusionClassifier, FusionModel
from fusion_model.preprocess import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    PREPROCESS_FILE,
    Batch,
    Preprocessor,
)
from fusion_model.serving import EMBEDDING_OUTPUT  # the extra output of a model exported with_embedding

log = logging.getLogger(__name__)

OPSET = 17
MANIFEST = "manifest.json"
DYNAMIC_AXES = {
    "input_ids": {0: "batch", 1: "seq"},
    "attention_mask": {0: "batch", 1: "seq"},
    "pixel_values": {0: "num_images"},
    "has_image": {0: "batch"},
    "probs": {0: "batch"},
    "gates": {0: "batch"},
}


def example_feeds(preprocessor: Preprocessor, images: Sequence[bytes]) -> dict[str, np.ndarray]:
    """A small traced example: padded rows of different lengths, one image on the second row."""
    texts = ["a short one", "a somewhat longer example sentence for tracing", ""]
    return preprocessor(texts, [None, images[0], None]).feeds


def export_onnx(model: FusionModel, path: Path, feeds: dict[str, np.ndarray], opset: int = OPSET) -> Path:
    import warnings

    path = Path(path)
    model.eval()
    args = tuple(torch.from_numpy(feeds[k]) for k in INPUT_NAMES)
    names = list(OUTPUT_NAMES) + ([EMBEDDING_OUTPUT] if getattr(model, "with_embedding", False) else [])
    axes = {**DYNAMIC_AXES, **({EMBEDDING_OUTPUT: {0: "batch"}} if EMBEDDING_OUTPUT in names else {})}
    t0 = time.perf_counter()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python-side shape branches
        torch.onnx.export(model, args, str(path), dynamo=False, opset_version=opset,
                          input_names=list(INPUT_NAMES), output_names=names,
                          dynamic_axes=axes, do_constant_folding=True)
    import onnx

    onnx.checker.check_model(str(path))
    log.info("exported %s (%.1f MB, opset %d) in %.1f s", path.name, path.stat().st_size / 1e6, opset,
             time.perf_counter() - t0)
    return path


def ort_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def verify_onnx(model: FusionModel, session, batches: Sequence[dict[str, np.ndarray]], atol: float = 1e-4) -> dict:
    """onnxruntime vs torch on every batch; raises AssertionError beyond ``atol``."""
    model.eval()
    worst_p = worst_g = worst_e = 0.0
    rows = 0
    sizes = set()
    for feeds in batches:
        with torch.inference_mode():
            ref = model(*(torch.from_numpy(feeds[k]) for k in INPUT_NAMES))
        p_ref, g_ref = ref[:2]
        p, g = session.run(list(OUTPUT_NAMES), feeds)
        if len(ref) > 2:  # the embedding output: same tolerance, rows with text only
            e = session.run([EMBEDDING_OUTPUT], feeds)[0]
            has_text = feeds["attention_mask"].sum(1) > 0
            if has_text.any():
                worst_e = max(worst_e, float(np.abs(e - ref[2].numpy())[has_text].max()))
        worst_p = max(worst_p, float(np.abs(p - p_ref.numpy()).max()))
        worst_g = max(worst_g, float(np.abs(g - g_ref.numpy()).max()))
        rows += len(p)
        sizes.add(len(p))
        if not np.isfinite(p).all():
            raise AssertionError("non-finite probabilities from onnxruntime")
    report = {"rows": rows, "batches": len(batches), "batch_sizes": sorted(sizes),
              "max_abs_diff_probs": worst_p, "max_abs_diff_gates": worst_g, "max_abs_diff_text_emb": worst_e,
              "atol": atol}
    if worst_p > atol or worst_g > atol or worst_e > atol:
        raise AssertionError(f"onnxruntime differs from torch: {report}")
    return report


def verification_batches(preprocessor: Preprocessor, texts: Sequence[str], images: Sequence[bytes],
                         batch_sizes=(1, 5, 32, 7, 64), seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Batches of mixed rows: text+image, text only, image only, (a few) empty; varying sizes."""
    rng = np.random.default_rng(seed)
    batches, i, k = [], 0, 0
    n = len(texts)
    while i < n:
        bs = batch_sizes[k % len(batch_sizes)]
        k += 1
        chunk = list(texts[i:i + bs])
        i += bs
        imgs: list[bytes | None] = []
        for j in range(len(chunk)):
            r = rng.random()
            if r < 0.15 and images:
                imgs.append(images[int(rng.integers(len(images)))])
            elif r < 0.2 and images:
                imgs.append(images[int(rng.integers(len(images)))])
                chunk[j] = ""  # image only
            else:
                imgs.append(None)
                if r > 0.995:
                    chunk[j] = ""  # neither
        batches.append(preprocessor(chunk, imgs).feeds)
    return batches


def benchmark(session, preprocessor: Preprocessor, texts: Sequence[str], batch_sizes=(1, 32),
              seconds: float = 3.0) -> dict:
    """Text-only throughput (texts/s) on this session's threads: model alone, and with tokenization."""
    out = {}
    for bs in batch_sizes:
        batches = [list(texts[(s % len(texts)):(s % len(texts)) + bs]) for s in range(0, 64 * bs, bs)]
        batches = [b for b in batches if len(b) == bs] or [list(texts[:bs])]
        prepared = [preprocessor(b).feeds for b in batches]
        session.run(None, prepared[0])  # warm-up
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            session.run(None, prepared[n % len(prepared)])
            n += 1
        model_rate = n * bs / (time.perf_counter() - t0)
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            session.run(None, preprocessor(batches[n % len(batches)]).feeds)
            n += 1
        e2e_rate = n * bs / (time.perf_counter() - t0)
        out[f"batch_{bs}"] = {"texts_per_s_model": round(model_rate, 1),
                              "texts_per_s_with_tokenization": round(e2e_rate, 1)}
    return out


def benchmark_images(session, preprocessor: Preprocessor, text: str, images: Sequence[bytes],
                     seconds: float = 3.0) -> dict:
    """Rows with text + image, batch 1, decoding included (rows/s)."""
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        session.run(None, preprocessor([text], [images[n % len(images)]]).feeds)
        n += 1
    return {"batch_1_text_plus_image_rows_per_s": round(n / (time.perf_counter() - t0), 1)}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_artifact(out_dir: Path, *, text_encoder, image_encoder, fusion: FusionClassifier, card: dict,
                   verify_texts: Sequence[str], verify_images: Sequence[bytes], fingerprint: str,
                   bench: bool = True, bench_texts: Sequence[str] | None = None, atol: float = 1e-4,
                   save_extra=None) -> Path:
    """Export, verify (onnxruntime == torch within ``atol``), benchmark and write the artifact dir.

    Written into a temporary sibling and renamed, so a reader never sees a half-written artifact.
    ``save_extra(tmp_dir)`` may add files (e.g. fusion.pt) before the manifest is written.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    tmp.chmod(0o755)
    try:
        text_cfg = text_encoder.save_tokenizer(tmp / "tokenizer")
        text_cfg["tokenizer_file"] = "tokenizer/tokenizer.json"
        preprocess = {
            "text": text_cfg,
            "image": {**image_encoder.preprocess_config.to_dict(), "encoder": image_encoder.name},
            "inputs": {
                "input_ids": "INT64 [batch, seq]",
                "attention_mask": "INT64 [batch, seq]; a row of zeros = no text",
                "pixel_values": "FP32 [num_images, 3, H, W]: images of the rows with has_image=1, in row order",
                "has_image": "FP32 [batch]: 1.0 = row has an image",
            },
            "outputs": {"probs": "FP32 [batch, 3] softmax over labels",
                        "gates": "FP32 [batch, 2] alpha (text), beta (image)",
                        EMBEDDING_OUTPUT: "FP32 [batch, Dt] L2-normalised text embedding (rows without text: meaningless)"},
            "labels": list(LABELS),
        }
        (tmp / PREPROCESS_FILE).write_text(json.dumps(preprocess, indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")
        (tmp / "labels.json").write_text(json.dumps(list(LABELS)) + "\n", encoding="utf-8")
        pre = Preprocessor.from_dir(tmp)

        model = FusionModel(text_encoder.module(), image_encoder.module(), fusion, with_embedding=True).eval()
        export_onnx(model, tmp / "model.onnx", example_feeds(pre, verify_images))
        t0 = time.perf_counter()
        session = ort_session(tmp / "model.onnx", threads=max(1, min(2, os.cpu_count() or 1)))
        batches = verification_batches(pre, verify_texts, verify_images)
        verification = verify_onnx(model, session, batches, atol=atol)
        verification["seconds"] = round(time.perf_counter() - t0, 1)
        log.info("onnxruntime == torch on %d rows in %d batches (sizes %s): max |diff| probs %.2e, gates %.2e",
                 verification["rows"], verification["batches"], verification["batch_sizes"],
                 verification["max_abs_diff_probs"], verification["max_abs_diff_gates"])
        throughput = {}
        if bench:
            s1 = ort_session(tmp / "model.onnx", threads=1)
            bt = list(bench_texts or verify_texts)
            ids, mask, _ = pre.text(bt)
            throughput = {"threads": 1, "texts": len(bt), "median_tokens": int(np.median(mask.sum(1))),
                          **benchmark(s1, pre, bt), **benchmark_images(s1, pre, bt[0], verify_images)}
            log.info("throughput, onnxruntime 1 thread: %s", json.dumps(throughput))
        if save_extra:
            save_extra(tmp)
        card = {**card, "onnx": {"opset": OPSET, "dynamic_axes": DYNAMIC_AXES, "verification": verification},
                "throughput_onnxruntime_cpu": throughput}
        (tmp / "model_card.json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = {"name": out_dir.name, "fingerprint": fingerprint, "files": files,
                    "model_onnx_sha256": sha256_file(tmp / "model.onnx"), "created_unix": int(time.time())}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        publish_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def is_complete(artifact_dir: Path, fingerprint: str | None = None) -> bool:
    try:
        m = json.loads((Path(artifact_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if fingerprint is not None and m.get("fingerprint") != fingerprint:
        return False
    return all((Path(artifact_dir) / f).is_file() and (Path(artifact_dir) / f).stat().st_size == size
               for f, size in m.get("files", {}).items())


def run_artifact(artifact_dir: Path, texts: Sequence[str], images: Sequence[bytes | None] | None = None,
                 threads: int = 1) -> tuple[np.ndarray, Batch]:
    """Score with an artifact directory the way the server will: preprocess + onnxruntime."""
    pre = Preprocessor.from_dir(artifact_dir)
    batch = pre(texts, images)
    probs, _gates = ort_session(Path(artifact_dir) / "model.onnx", threads).run(list(OUTPUT_NAMES), batch.feeds)
    return probs, batch
