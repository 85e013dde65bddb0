"""Shared test setup: the repository on sys.path, and the real local stack for integration tests.

The stack (Tansu broker, Redis, Triton with triton_repo/models) starts once per session on free
ports and is stopped at the end; each test isolates itself with its own topic names, consumer
group and Redis key prefix.
"""
from __future__ import annotations

import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

MODELS = REPO_ROOT / "triton_repo" / "models"
MACHINE_REDIS = "redis://127.0.0.1:6379/0"


@contextmanager
def hub_offline(threads: int = 2):
    """The Hugging Face hub offline (a test must never download) and torch on ``threads`` threads
    (2 cores here); both undone on exit, so later tests see the process as it was."""
    import huggingface_hub.constants as hub_constants
    import torch

    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    mp.setattr(hub_constants, "HF_HUB_OFFLINE", True, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        mp.undo()


def ensure_model_built() -> None:
    """The fusion model is a build artifact (cached): build and link it once if missing."""
    if not (MODELS / "fusion" / "1" / "artifact" / "model.onnx").exists():
        subprocess.run([sys.executable, "-m", "babelwatch", "model", "build"], check=True, cwd=REPO_ROOT)


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    from babelwatch.localstack import LocalStack
    from babelwatch.localstack.triton import SERVED_MODELS

    ensure_model_built()
    st = LocalStack(redis_url=MACHINE_REDIS, triton_repo=MODELS, run_dir=tmp_path_factory.mktemp("stack"),
                    triton_load_models=SERVED_MODELS)
    st.start()
    yield st
    st.stop()


class PipelineWorld:
    """One isolated babelwatch deployment on the shared stack: its own topics, group and keys."""

    def __init__(self, stack, run_dir: Path, **overrides) -> None:
        tag = uuid.uuid4().hex[:8]
        self.stack = stack
        self.run_dir = run_dir
        self.prefix = f"bwtest-{tag}"
        self.topics = {
            "events": f"t{tag}.events",
            "scored": f"t{tag}.scored",
            "alerts": f"t{tag}.alerts",
            "deadletter": f"t{tag}.deadletter",
            "late": f"t{tag}.late",
            "closed_windows": f"t{tag}.closed",
            "alerts_failed": f"t{tag}.alerts.failed",
        }
        stack.broker.create_topics({self.topics["events"]: 4, self.topics["scored"]: 4,
                                    self.topics["alerts"]: 1, self.topics["deadletter"]: 1,
                                    self.topics["late"]: 1, self.topics["closed_windows"]: 4,
                                    self.topics["alerts_failed"]: 1})
        self.env = {
            "BABELWATCH_BROKER_URL": f"kafka://{stack.bootstrap}",
            "BABELWATCH_REDIS_URL": stack.redis_url,
            "BABELWATCH_TRITON_URL": stack.triton_grpc_url,
            "BABELWATCH_APP_ID": f"bwtest-{tag}",
            "BABELWATCH_REDIS_PREFIX": self.prefix,
            **{f"BABELWATCH_TOPIC_{k.upper()}": v for k, v in self.topics.items()},
            **{f"BABELWATCH_{k.upper()}": str(v) for k, v in overrides.items()},
        }
        self.workers = []
        self.notifiers = []

    def start_worker(self, name: str = "worker"):
        from babelwatch.localstack.worker_process import WorkerProcess

        w = WorkerProcess(self.run_dir, self.env, name=name).start()
        self.workers.append(w)
        return w

    def launch_notifier(self, name: str = "notifier", **env: str):
        """`babelwatch notify` (notifier + HTTP API) for this world, started without waiting
        (call ``wait_ready()``); ``env``: more environment, e.g. webhook secrets."""
        from babelwatch.localstack.notifier_process import NotifierProcess

        n = NotifierProcess(self.run_dir, {**self.env, **env}, name=name).launch()
        self.notifiers.append(n)
        return n

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        for n in self.notifiers:
            n.stop()
        import redis

        r = redis.Redis.from_url(self.stack.redis_url)
        keys = list(r.scan_iter(f"{self.prefix}:*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()


@pytest.fixture
def world(stack, tmp_path):
    worlds = []

    def make(**overrides) -> PipelineWorld:
        w = PipelineWorld(stack, tmp_path, **overrides)
        worlds.append(w)
        return w

    yield make
    for w in worlds:
        w.stop()
