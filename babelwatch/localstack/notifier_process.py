"""``babelwatch notify`` (the notifier and the HTTP API) as a child process, pointed at a stack
through BABELWATCH_* env. Ready = the API answers /health and the notifier got its partition."""
from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path
from typing import Mapping

from .process import ChildService, ManagedProcess, free_port, wait_until

READY_LINE = "notifier ready"  # stream.notifier.READY_LINE (not imported: keeps this module light)


class NotifierProcess(ChildService):
    def __init__(self, run_dir: str | os.PathLike, env: Mapping[str, str], name: str = "notifier",
                 port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port()
        full_env = dict(os.environ)
        full_env.update(env)
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.process = ManagedProcess(
            name, [sys.executable, "-m", "babelwatch", "notify", "--host", host, "--port", str(self.port)],
            Path(run_dir), env=full_env, cwd=Path(__file__).resolve().parents[2],
        )
        self._offset = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def launch(self) -> "NotifierProcess":
        """Start without waiting (see :meth:`wait_ready`): lets a caller start other things meanwhile."""
        self._offset = self.process.log_path.stat().st_size if self.process.log_path.exists() else 0
        self.process.start()
        return self

    def wait_ready(self, timeout: float = 60.0) -> "NotifierProcess":
        def ready() -> bool:
            with open(self.process.log_path, "rb") as fh:
                fh.seek(self._offset)
                if READY_LINE.encode() not in fh.read():
                    return False
            with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                return resp.status == 200

        try:
            wait_until(ready, timeout, interval=0.2, what="notifier ready and API answering", process=self.process)
        except BaseException:
            self.stop()
            raise
        return self

    def start(self, timeout: float = 60.0) -> "NotifierProcess":
        return self.launch().wait_ready(timeout)
