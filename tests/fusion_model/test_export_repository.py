"""``python -m fusion_model.build --out DIR`` (issue 12): a Triton model repository of real files
that a container or a Kubernetes volume can mount, with nothing pointing into this machine's
model cache; rewritten whole (renamed into place) on a second export."""
from __future__ import annotations

import os

from fusion_model.build import export_repository


def _links_out_of(root) -> list[str]:
    bad = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            if os.path.islink(p) and not os.path.realpath(p).startswith(os.path.realpath(root)):
                bad.append(p)
    return bad


def test_export_writes_real_files_and_replaces_whole(tmp_path):
    artifact = tmp_path / "cache" / "fusion-x"
    (artifact / "tokenizer").mkdir(parents=True)
    (artifact / "model.onnx").write_bytes(b"onnx-bytes")
    (artifact / "tokenizer" / "tokenizer.json").write_text("{}")
    out = export_repository(tmp_path / "repo", ("fusion", "fusion_preprocess"), artifact)
    assert (out / "fusion" / "config.pbtxt").is_file() and (out / "fusion" / "1" / "model.py").is_file()
    for model in ("fusion", "fusion_preprocess"):
        copied = out / model / "1" / "artifact"
        assert not copied.is_symlink() and (copied / "model.onnx").read_bytes() == b"onnx-bytes"
        assert (copied / "tokenizer" / "tokenizer.json").is_file()
    assert _links_out_of(out) == [] and not list(out.rglob("__pycache__"))
    assert not (out / "cheap").exists()  # only the models asked for

    (artifact / "model.onnx").write_bytes(b"v2")
    (out / "stale-file").write_text("from the first export")
    export_repository(out, ("fusion",), artifact)
    assert (out / "fusion" / "1" / "artifact" / "model.onnx").read_bytes() == b"v2"
    assert not (out / "stale-file").exists() and not (out / "fusion_preprocess").exists()
    assert not (tmp_path / "repo.tmp").exists()
