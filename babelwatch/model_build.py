"""``babelwatch model build``: build the fusion model (cached) and link it into the Triton repository.

The artifact (~0.5 GB: ONNX graph, tokenizer, preprocessing) lives in the model cache, not in git;
``triton_repo/models/fusion/1/artifact`` points at the newest build.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from babelwatch.settings import get_settings

log = logging.getLogger("babelwatch.model")


def link_artifact(artifact: Path, models: Path) -> Path:
    link = models / "fusion" / "1" / "artifact"
    tmp = link.with_name("artifact.tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(artifact.resolve(), target_is_directory=True)
    os.replace(tmp, link)  # atomic: a running Triton never sees a missing link
    return link


def build(force: bool = False) -> Path:
    from babelwatch.model.build import build as build_fusion

    artifact = build_fusion(force=force)
    link = link_artifact(Path(artifact), get_settings().triton_repo)
    log.info("fusion model ready: %s -> %s", link, artifact)
    return Path(artifact)
