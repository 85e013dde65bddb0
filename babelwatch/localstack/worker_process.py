"""A babelwatch Faust worker as a child process, pointed at a given stack through BABELWATCH_* env."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from .process import ChildService, ManagedProcess, wait_until

READY_LINE = "partitions assigned"


class WorkerProcess(ChildService):
    def __init__(self, run_dir: str | os.PathLike, env: Mapping[str, str], name: str = "worker") -> None:
        full_env = dict(os.environ)
        full_env.update(env)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.process = ManagedProcess(
            name, [sys.executable, "-m", "babelwatch", "worker"], Path(run_dir), env=full_env,
            cwd=Path(__file__).resolve().parents[2],
        )

    def start(self, timeout: float = 90.0) -> "WorkerProcess":
        """Start and wait until the consumer group gave this worker its partitions."""
        offset = self.process.log_path.stat().st_size if self.process.log_path.exists() else 0
        self.process.start()

        def joined() -> bool:
            with open(self.process.log_path, "rb") as fh:
                fh.seek(offset)
                return READY_LINE.encode() in fh.read()

        try:
            wait_until(joined, timeout, interval=0.2, what="worker joined its consumer group", process=self.process)
        except BaseException:
            self.stop()
            raise
        return self
