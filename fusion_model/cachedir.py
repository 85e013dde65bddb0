"""Cached build outputs (converted encoders, model artifacts): a lock so two builds never
interleave, and an atomic publish so a reader never sees a half-written directory."""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def publish_dir(tmp: Path, out_dir: Path) -> Path:
    """Move a finished ``tmp`` directory into place as ``out_dir``, replacing an older one."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir
