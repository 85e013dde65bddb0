"""The layers of docs/design.md, kept by import-linter (contracts in pyproject.toml): an upward
import (workers importing the shell, the model importing workers, ...) fails here."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import bw_paths

REPO = bw_paths.REPO
TRITON_MODELS = REPO / "triton_repo" / "models"
PROJECT = ("babelwatch", "stream", "workers", "fusion_model", "contracts", "triton_repo")


def test_layers_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a test dependency"
    done = subprocess.run([exe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def _project_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        out |= {n for n in names if n.split(".")[0] in PROJECT}
    return out


def test_triton_models_import_only_the_model_and_the_contracts():
    """What Triton loads (triton_repo/models/*/1/model.py, not importable as packages, so outside
    import-linter's reach) may use the model package and nothing above it."""
    files = sorted(TRITON_MODELS.glob("*/1/model.py"))
    assert len(files) >= 3
    bad = {str(f.relative_to(REPO)): sorted(m for m in _project_imports(f)
                                           if m.split(".")[0] not in ("fusion_model", "contracts"))
           for f in files}
    assert not any(bad.values()), bad


def test_nothing_below_the_shell_imports_it():
    """Lazy imports stay (they keep `--help` and the Triton stub fast) but never point upward:
    import-linter sees imports inside functions too; this states the most common slip plainly."""
    offenders = []
    for pkg in ("stream", "workers", "fusion_model", "contracts"):
        for f in (REPO / pkg).rglob("*.py"):
            if any(m.split(".")[0] == "babelwatch" for m in _project_imports(f)):
                offenders.append(str(f.relative_to(REPO)))
    assert offenders == []


def test_no_module_imports_itself_through_others():
    """No import cycle, imports inside functions included (grimp, import-linter's graph), so no
    lazy import can be there to dodge one."""
    import grimp

    graph = grimp.build_graph("babelwatch", "stream", "workers", "fusion_model", "contracts")
    cycles = sorted({tuple(sorted((m, imp))) for m in graph.modules
                     for imp in graph.find_modules_directly_imported_by(m)
                     if graph.chain_exists(importer=imp, imported=m)})
    assert cycles == []
