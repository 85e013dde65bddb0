"""Export the GPU variant's dense ONNX graph for the built artifact and link it into the repository.

    python -m fusion_model.tensorrt.export_dense [--artifact DIR]

Reads the artifact linked at ``triton_repo/models/fusion/1/artifact`` (``babelwatch model build``),
writes ``<model cache>/dense-<artifact name>/model_dense.onnx`` (cached: ~0.5 GB, so not in git),
proves it equal to the artifact's packed graph (fusion_model.dense.export_dense) and links it
as ``fusion_engine/1/dense``: the input of build_engine.py, and what the CPU stand-in engine
(``--model-config-name=ensemble_cpu``) serves.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from contracts.settings import get_settings

MODELS = get_settings().triton_repo  # the Triton model repository (triton_repo/models)


def export(artifact: Path | None = None, force: bool = False) -> Path:
    """The dense export for ``artifact`` (cached by artifact name), linked into fusion_engine/1/dense."""
    from fusion_model.build import model_cache_root
    from fusion_model.dense import DENSE_FILE, DENSE_FORMAT, export_dense
    from fusion_model.build import link_dir

    artifact = (artifact or MODELS / "fusion" / "1" / "artifact").resolve()
    if not (artifact / "model.onnx").is_file():
        raise FileNotFoundError(f"no built model at {artifact}: run `babelwatch model build` first")
    out = model_cache_root() / f"dense-{artifact.name}"
    if force or not (out / DENSE_FILE).is_file() or _format(out) != DENSE_FORMAT:
        export_dense(artifact, out)
    link_dir(out, MODELS / "fusion_engine" / "1" / "dense")
    return out


def _format(out: Path) -> int | None:
    try:
        return json.loads((out / "dense.json").read_text()).get("format")
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", type=Path, default=None)
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    out = export(args.artifact, force=args.force)
    print(json.dumps({"dense": str(out), **json.loads((out / "dense.json").read_text())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
