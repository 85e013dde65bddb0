"""GPU check for the TensorRT variant, sized for a lent GPU (under 5 minutes):

    python -m fusion_model.tensorrt.gpu_check [--out DIR]

1. build the fp16 engine from the dense ONNX graph (build_engine.py);
2. verify it against onnxruntime on the same graph: mixed batches (text+image, text only,
   image only, a bad image), max |diff| of the probabilities and label agreement;
3. time batch 1, 32 and 128: rows/s and p50/p99 per call, with onnxruntime (CPU, all cores) timed
   on the same batches in the same run for the ratio.

Writes ``gpu_check.json`` to ``--out`` (or $OUT). Engines are compared through one small protocol,
``Runner.run(feeds) -> probs``, so the same check runs with ``--candidate onnxruntime`` on a machine
without a GPU (what the test suite does) and with ``tensorrt`` on a GPU.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from fusion_model.tensorrt.build_engine import ENGINE_DIR, MODELS

log = logging.getLogger("babelwatch.tensorrt")
INPUTS = ("input_ids", "attention_mask", "pixel_values", "has_image")
PROB_ATOL_FP16 = 2e-2  # fp16 engine vs fp32 onnxruntime; labels must agree on >= 99% of rows
MIN_LABEL_AGREEMENT = 0.99


class Runner(Protocol):
    name: str

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Dense feeds -> probs [batch, 3] (numpy, on the host)."""


class OnnxRuntimeRunner:
    def __init__(self, onnx_path: Path, threads: int | None = None) -> None:
        from fusion_model.export import ort_session

        self.name = f"onnxruntime-cpu-{threads or os.cpu_count()}t"
        self.session = ort_session(onnx_path, threads=threads or os.cpu_count() or 1)

    def run(self, feeds):
        return self.session.run(["probs"], feeds)[0]


class TensorRTRunner:
    """A deserialized engine; I/O through torch CUDA tensors (no pycuda needed)."""

    def __init__(self, plan_path: Path) -> None:
        import tensorrt as trt
        import torch

        self.torch = torch
        self.name = f"tensorrt-{trt.__version__}"
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan_path.read_bytes())
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()

    def run(self, feeds):
        torch = self.torch
        held = {}
        for name in INPUTS:
            t = torch.from_numpy(np.ascontiguousarray(feeds[name])).cuda()
            held[name] = t
            self.context.set_input_shape(name, tuple(t.shape))
            self.context.set_tensor_address(name, t.data_ptr())
        batch = len(feeds["input_ids"])
        for name, width in (("probs", 3), ("gates", 2)):
            held[name] = torch.empty((batch, width), dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, held[name].data_ptr())
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return held["probs"].cpu().numpy()


def check_feeds(artifact: Path) -> list[dict[str, np.ndarray]]:
    """The dense export's own check batches (mixed modalities, bad images), bucket-padded."""
    from fusion_model.dense import check_batches, dense_feeds, pad_to_bucket
    from fusion_model.preprocess import Preprocessor

    pre = Preprocessor.from_dir(artifact)
    out = []
    for b in check_batches(pre):
        ids, mask = pad_to_bucket(b.feeds["input_ids"], b.feeds["attention_mask"], pre.text.pad_id)
        out.append(dense_feeds({**b.feeds, "input_ids": ids, "attention_mask": mask}))
    return out


def timing_feeds(artifact: Path, batch: int) -> dict[str, np.ndarray]:
    """A stream-like batch: demo texts, every fifth row with an image."""
    from fusion_model.dense import demo_texts, dense_feeds, pad_to_bucket
    from fusion_model.preprocess import Preprocessor
    from fusion_model.synthetic import synthetic_image

    pre = Preprocessor.from_dir(artifact)
    rng = np.random.default_rng(batch)
    texts = demo_texts()
    chunk = [texts[i % len(texts)] for i in range(batch)]
    imgs = [synthetic_image(int(rng.integers(3)), rng) if i % 5 == 0 else None for i in range(batch)]
    f = pre(chunk, imgs).feeds
    ids, mask = pad_to_bucket(f["input_ids"], f["attention_mask"], pre.text.pad_id)
    return dense_feeds({**f, "input_ids": ids, "attention_mask": mask})


def verify(reference: Runner, candidate: Runner, batches, atol: float, min_agreement: float) -> dict:
    worst, agree, rows = 0.0, 0, 0
    for feeds in batches:
        ref, got = reference.run(feeds), candidate.run(feeds)
        worst = max(worst, float(np.abs(got - ref).max()))
        agree += int((got.argmax(1) == ref.argmax(1)).sum())
        rows += len(ref)
    report = {"rows": rows, "max_abs_diff_probs": worst, "label_agreement": round(agree / rows, 4),
              "atol": atol, "min_label_agreement": min_agreement}
    report["ok"] = worst <= atol and agree / rows >= min_agreement
    return report


def time_runner(runner: Runner, feeds, seconds: float, min_calls: int = 5) -> dict:
    runner.run(feeds)  # warm-up (engine context, allocator)
    lat = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(lat) < min_calls:
        t0 = time.perf_counter()
        runner.run(feeds)
        lat.append(time.perf_counter() - t0)
    batch = len(feeds["input_ids"])
    return {"batch": batch, "calls": len(lat), "rows_per_s": round(batch * len(lat) / sum(lat), 1),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 3), "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 3)}


def run_check(reference: Runner, candidate: Runner, artifact: Path, batch_sizes=(1, 32, 128), seconds: float = 5.0,
              baseline_seconds: float = 3.0, atol: float = PROB_ATOL_FP16,
              min_agreement: float = MIN_LABEL_AGREEMENT) -> dict:
    report = {"reference": reference.name, "candidate": candidate.name,
              "verify": verify(reference, candidate, check_feeds(artifact), atol, min_agreement), "timing": []}
    for bs in batch_sizes:
        feeds = timing_feeds(artifact, bs)
        cand = time_runner(candidate, feeds, seconds)
        base = time_runner(reference, feeds, baseline_seconds, min_calls=2)
        cand["baseline_rows_per_s"] = base["rows_per_s"]
        cand["speedup_vs_baseline"] = round(cand["rows_per_s"] / base["rows_per_s"], 2)
        report["timing"].append(cand)
        log.info("batch %d: %s", bs, json.dumps(cand))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, default=ENGINE_DIR / "dense" / "model_dense.onnx")
    ap.add_argument("--plan", type=Path, default=ENGINE_DIR / "model.plan")
    ap.add_argument("--artifact", type=Path, default=MODELS / "fusion" / "1" / "artifact")
    ap.add_argument("--candidate", choices=("tensorrt", "onnxruntime"), default="tensorrt")
    ap.add_argument("--skip-build", action="store_true", help="use the existing plan")
    ap.add_argument("--seconds", type=float, default=5.0, help="timing per batch size (candidate)")
    ap.add_argument("--batch-sizes", default="1,32,128")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    t0 = time.perf_counter()
    report: dict = {}
    if args.candidate == "tensorrt":
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            print("TensorRT is not installed on this machine: nothing to check (see README, GPU variant).",
                  file=sys.stderr)
            return 2
        from fusion_model.tensorrt.build_engine import build

        if not args.skip_build:
            report["build"] = build(args.onnx, args.plan, fp16=True)
        candidate: Runner = TensorRTRunner(args.plan)
    else:
        candidate = OnnxRuntimeRunner(args.onnx, threads=1)
    reference = OnnxRuntimeRunner(args.onnx)
    sizes = tuple(int(x) for x in args.batch_sizes.split(","))
    report.update(run_check(reference, candidate, args.artifact, sizes, seconds=args.seconds,
                            baseline_seconds=min(args.seconds, 3.0)))
    report["seconds"] = round(time.perf_counter() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if report["verify"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
