"""``babelwatch model build``: run the Triton repository's build script (cached)."""
from __future__ import annotations

import runpy

from babelwatch.settings import get_settings


def build(force: bool = False) -> None:
    script = get_settings().triton_repo.parent / "build_skeleton_model.py"
    module = runpy.run_path(str(script))
    module["train"](force=force)
