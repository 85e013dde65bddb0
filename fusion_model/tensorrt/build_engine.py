"""Build the GPU variant's TensorRT engine from the dense ONNX graph, on the GPU that will serve it.

    python -m fusion_model.tensorrt.build_engine [--onnx model_dense.onnx] [--out PLAN] [--int8]

An engine is tied to its GPU model and TensorRT version, so it is built where it runs (for example
inside NVIDIA's Triton container, which ships TensorRT) and never committed. Defaults: the dense
graph linked at ``triton_repo/models/fusion_engine/1/dense/`` (made by ``export_dense``), written to
``fusion_engine/1/model.plan``; fp16; one optimization profile for batch 1..128 and 1..128 tokens
(the preprocessing pads to 16/32/64/128, so the tuned shape is the common 32 x 32).

``--int8`` adds INT8 with entropy calibration on the demo stream's texts and synthetic images
(calibration cache next to the plan). It is an option, not the default: on CPU, INT8 dynamic
quantization of the same model changed 2.3% of labels (bench/RESULTS.md).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from contracts.settings import get_settings

log = logging.getLogger("babelwatch.tensorrt")
MODELS = get_settings().triton_repo  # the Triton model repository (triton_repo/models)
ENGINE_DIR = MODELS / "fusion_engine" / "1"
MAX_BATCH, MAX_SEQ, IMAGE = 128, 128, (3, 224, 224)


def profile_shapes(max_batch: int = MAX_BATCH, max_seq: int = MAX_SEQ, opt_batch: int = 32,
                   opt_seq: int = 32) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """(min, opt, max) shape per input of the dense graph, for the engine's optimization profile."""
    return {
        "input_ids": ((1, 1), (opt_batch, opt_seq), (max_batch, max_seq)),
        "attention_mask": ((1, 1), (opt_batch, opt_seq), (max_batch, max_seq)),
        "pixel_values": ((1, *IMAGE), (opt_batch, *IMAGE), (max_batch, *IMAGE)),
        "has_image": ((1,), (opt_batch,), (max_batch,)),
    }


def calibration_feeds(artifact: Path, batch: int = 32, batches: int = 8) -> list[dict[str, np.ndarray]]:
    """Dense feeds for INT8 calibration: the demo stream's texts, every third row with an image."""
    from fusion_model.dense import demo_texts, dense_feeds, pad_to_bucket
    from fusion_model.preprocess import Preprocessor
    from fusion_model.synthetic import synthetic_image

    pre = Preprocessor.from_dir(artifact)
    rng = np.random.default_rng(0)
    texts = demo_texts()
    out = []
    for b in range(batches):
        chunk = [texts[(b * batch + i) % len(texts)] for i in range(batch)]
        imgs = [synthetic_image(int(rng.integers(3)), rng) if i % 3 == 0 else None for i in range(batch)]
        feeds = pre(chunk, imgs).feeds
        ids, mask = pad_to_bucket(feeds["input_ids"], feeds["attention_mask"], pre.text.pad_id)
        out.append(dense_feeds({**feeds, "input_ids": ids, "attention_mask": mask}))
    return out


def build(onnx_path: Path, plan_path: Path, *, fp16: bool = True, int8: bool = False, artifact: Path | None = None,
          workspace_gb: float = 8.0, shapes=None) -> dict:
    """Parse the ONNX graph, build and serialize the engine; returns a small report."""
    import tensorrt as trt

    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 0
    if hasattr(trt, "NetworkDefinitionCreationFlag") and int(trt.__version__.split(".")[0]) < 10:
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)  # implicit in TensorRT 10
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in (shapes or profile_shapes()).items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        if artifact is None:
            raise ValueError("--int8 needs the artifact (tokenizer, preprocessing) for calibration data")
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_calibration_profile(profile)
        config.int8_calibrator = _calibrator(trt, calibration_feeds(artifact), plan_path.with_suffix(".calib"))
    t0 = time.perf_counter()
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT failed to build the engine (see the log above)")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = plan_path.with_suffix(".plan.tmp")
    tmp.write_bytes(bytes(plan))
    tmp.replace(plan_path)
    report = {"onnx": str(onnx_path), "plan": str(plan_path), "tensorrt": trt.__version__, "fp16": fp16, "int8": int8,
              "build_seconds": round(time.perf_counter() - t0, 1), "plan_mb": round(plan_path.stat().st_size / 1e6, 1)}
    log.info("engine built: %s", json.dumps(report))
    return report


def _calibrator(trt, feeds: list[dict[str, np.ndarray]], cache: Path):
    """An entropy calibrator fed from torch CUDA tensors (torch is there wherever the GPU check runs)."""
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.i = 0
            self.held: list = []

        def get_batch_size(self) -> int:
            return len(feeds[0]["input_ids"])

        def get_batch(self, names):
            if self.i >= len(feeds):
                return None
            f = feeds[self.i]
            self.i += 1
            self.held = [torch.from_numpy(np.ascontiguousarray(f[n])).cuda() for n in names]
            return [int(t.data_ptr()) for t in self.held]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.exists() else None

        def write_calibration_cache(self, data) -> None:
            cache.write_bytes(bytes(data))

    return Calibrator()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--onnx", type=Path, default=ENGINE_DIR / "dense" / "model_dense.onnx")
    ap.add_argument("--out", type=Path, default=ENGINE_DIR / "model.plan")
    ap.add_argument("--artifact", type=Path, default=MODELS / "fusion" / "1" / "artifact")
    ap.add_argument("--no-fp16", action="store_true", help="fp32 engine (slower; for accuracy comparisons)")
    ap.add_argument("--int8", action="store_true", help="add INT8 with entropy calibration")
    ap.add_argument("--workspace-gb", type=float, default=8.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        print("TensorRT is not installed here: build the engine on the GPU host that serves it "
              "(NVIDIA's Triton/TensorRT containers ship it, or `pip install tensorrt`).", file=sys.stderr)
        return 2
    if not args.onnx.is_file():
        print(f"{args.onnx} not found: run `python -m fusion_model.tensorrt.export_dense` first", file=sys.stderr)
        return 2
    print(json.dumps(build(args.onnx, args.out, fp16=not args.no_fp16, int8=args.int8, artifact=args.artifact,
                           workspace_gb=args.workspace_gb)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
