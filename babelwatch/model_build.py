"""``babelwatch model build``: build the fusion model (cached) and link it into the Triton repository.

The artifact (~0.5 GB: ONNX graph, tokenizer, preprocessing) lives in the model cache, not in git;
``triton_repo/models/fusion/1/artifact`` (the CPU variant) and ``fusion_preprocess/1/artifact`` (the
GPU variant's preprocessing) point at the newest build.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from babelwatch.settings import get_settings

log = logging.getLogger("babelwatch.model")


def link_dir(target: Path, link: Path) -> Path:
    """Point ``link`` at ``target`` atomically: a running Triton never sees a missing link."""
    tmp = link.with_name(link.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target.resolve(), target_is_directory=True)
    os.replace(tmp, link)
    return link


def link_artifact(artifact: Path, models: Path) -> Path:
    for model in ("fusion_preprocess",):
        link_dir(artifact, models / model / "1" / "artifact")
    return link_dir(artifact, models / "fusion" / "1" / "artifact")


def build(force: bool = False) -> Path:
    from babelwatch.model.build import build as build_fusion

    artifact = build_fusion(force=force)
    link = link_artifact(Path(artifact), get_settings().triton_repo)
    log.info("fusion model ready: %s -> %s", link, artifact)
    return Path(artifact)
