"""Plain Triton Inference Server on CPU, from the binary inside the ``nvidia-pytriton`` wheel.

Why not PyTriton's Python API: it adds 1.5-3 ms per request and hides the model repository;
we want the same ``config.pbtxt`` repository that a GPU deployment serves. Running the bare
binary needs (see shared/NOTES.md): a backend directory with the Python backend and the stub
built for *this* interpreter, LD_LIBRARY_PATH with the wheel's bundled libs plus this
interpreter's LIBDIR (else the stub mixes two libpython builds), and the venv's ``bin`` first on
PATH (the stub imports model dependencies through ``python3``). A stub that cannot start makes
the server hang for 90 s+, so we watch the log and fail fast. Shared-memory regions get a
per-instance prefix so a crashed run's leftovers can be told apart and removed.
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import re
import shutil
import stat
import sys
import sysconfig
import tempfile
import urllib.request
import uuid
from pathlib import Path
from typing import Mapping, Sequence

from .process import ManagedProcess, StartupFailed, free_port, wait_until

log = logging.getLogger("babelwatch.localstack")

SHM_BASE = "triton_python_backend_shm_region_"
# What a server on triton_repo/models loads (explicit mode): the repository also holds the GPU
# variant's composing models (fusion_preprocess, fusion_engine), which only the gpu/ensemble_cpu
# configurations of ``fusion`` pull in.
SERVED_MODELS = ("fusion", "cheap")
# The Python backend makes one such dir per server and removes it only on a clean shutdown.
PY_ENV_GLOB = "/tmp/python_env_*"
# Log lines that mean a backend stub will never come up (the server itself keeps hanging).
_STUB_FAILURE = re.compile(
    r"error while loading shared libraries"
    r"|Failed to \w*initiali[sz]e (?:the )?(?:Python )?stub"  # e.g. "Failed to preinitialize Python stub"
    r"|Failed to start (?:the )?stub"
    r"|Stub process .*(?:is not healthy|exited|failed)"
    r"|_recursion_count"  # stub mixing two libpython builds (wrong LD_LIBRARY_PATH)
    r"|triton_python_backend_stub.*(?:No such file|Permission denied|not found)",
    re.IGNORECASE,
)


def pytriton_paths() -> tuple[Path, Path]:
    """Return (``pytriton/tritonserver`` dir, ``nvidia_pytriton.libs`` dir) of the installed wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("nvidia-pytriton is not installed in this interpreter")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    server_dir, libs = pkg / "tritonserver", pkg.parent / "nvidia_pytriton.libs"
    for p in (server_dir / "bin" / "tritonserver", libs):
        if not p.exists():
            raise RuntimeError(f"nvidia-pytriton wheel lacks {p}")
    return server_dir, libs


def build_backend_dir(dest: Path, server_dir: Path) -> Path:
    """Assemble ``dest/python/`` = wheel's Python backend + the stub for the running Python."""
    src = server_dir / "backends" / "python"
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server_dir / "python_backend_stubs" / ver / "triton_python_backend_stub"
    if not stub.exists():
        raise RuntimeError(f"nvidia-pytriton ships no backend stub for Python {ver} ({stub})")
    out = dest / "python"
    out.mkdir(parents=True, exist_ok=True)
    for f in (src / "libtriton_python.so", src / "triton_python_backend_utils.py", stub):
        shutil.copy2(f, out / f.name)
    target = out / stub.name
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return dest


def _executable(path: Path) -> str:
    if not os.access(path, os.X_OK):  # wheels do not always keep the exec bit
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


class TritonServer:
    """One ``tritonserver`` process serving ``model_repository`` on 127.0.0.1."""

    def __init__(
        self,
        model_repository: str | os.PathLike,
        run_dir: str | os.PathLike | None = None,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        model_config_name: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        load_models: Sequence[str] | None = None,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="babelwatch-triton-"))
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.model_config_name = model_config_name
        # None: every model in the repository. A list: explicit mode, only these (and, for an
        # ensemble, the models it composes) -- a repository may hold a GPU-only model a CPU server
        # must not try to load.
        self.load_models = list(load_models) if load_models is not None else None
        self.extra_env = dict(extra_env or {})
        # Starts with the default prefix so generic cleanups (rm SHM_BASE*) still catch it.
        self.shm_prefix = f"{SHM_BASE}bw{uuid.uuid4().hex[:10]}_"
        self.process: ManagedProcess | None = None
        self.ready_seconds: float | None = None
        self._env_dirs_before: set[str] = set()

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def _env(self, libs: Path) -> dict[str, str]:
        env = dict(os.environ)
        ld = [str(libs), sysconfig.get_config_var("LIBDIR") or ""]
        if env.get("LD_LIBRARY_PATH"):
            ld.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in ld if p)
        # Not resolved: a venv's python is a symlink, and we want the venv's bin, not the base's.
        venv_bin = os.path.dirname(os.path.abspath(sys.executable))
        env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
        env.update(self.extra_env)
        return env

    def _ready(self) -> bool:
        log_text = self.process.log_tail(400) if self.process else ""
        if _STUB_FAILURE.search(log_text):
            raise StartupFailed(f"Triton backend stub failed; log {self.process.log_path}:\n{self.process.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def start(self, timeout: float = 120.0) -> "TritonServer":
        server_dir, libs = pytriton_paths()
        backends = build_backend_dir(self.run_dir / "backends", server_dir)
        argv = [
            _executable(server_dir / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            "--http-address=127.0.0.1", f"--http-port={self.http_port}",
            "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
            "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
        ]
        if self.model_config_name:
            argv.append(f"--model-config-name={self.model_config_name}")
        if self.load_models is not None:
            argv.append("--model-control-mode=explicit")
            argv.extend(f"--load-model={m}" for m in self.load_models)
        self._env_dirs_before = set(glob.glob(PY_ENV_GLOB))
        self.process = ManagedProcess(
            "tritonserver", argv, self.run_dir, env=self._env(libs), term_leader_only=True
        ).start()
        try:
            self.ready_seconds = wait_until(
                self._ready, timeout, interval=0.2,
                what=f"Triton {self.http_url}/v2/health/ready", process=self.process,
            )
        except BaseException:
            self.stop()
            raise
        log.info("triton ready (grpc %s, http %s) in %.2fs", self.grpc_url, self.http_url, self.ready_seconds)
        return self

    def leftover_shm(self) -> list[str]:
        return glob.glob(f"/dev/shm/{glob.escape(self.shm_prefix)}*")

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the server (and its stubs) and remove its shared-memory regions.

        SIGTERM during model loading, or a SIGKILL, skips Triton's own cleanup, leaving an
        empty /tmp/python_env_* dir: then remove the empty ones that appeared since start()
        (rmdir only, so a concurrent server's populated env is never touched).
        """
        if self.process is not None:
            self.process.stop(timeout)
            rc = self.process.returncode
            log.info("triton (grpc %s) stopped, rc=%s", self.grpc_url, rc)
            self.process = None
            if rc != 0:
                for path in set(glob.glob(PY_ENV_GLOB)) - self._env_dirs_before:
                    try:
                        os.rmdir(path)
                    except OSError:
                        pass
        for path in self.leftover_shm():
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "TritonServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
