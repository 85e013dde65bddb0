"""Subprocess plumbing shared by the local servers (broker, Redis, Triton).

Why: every local server must be stoppable as a whole (Triton forks backend stubs, so
killing only the parent leaks children), must leave a log behind for diagnosis, and
must fail fast with that log when it never becomes ready.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

log = logging.getLogger("babelwatch.localstack")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (racy, good enough locally)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ManagedProcess:
    """A subprocess in its own process group, logging stdout+stderr to ``run_dir/<name>.log``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        run_dir: str | os.PathLike,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
        term_leader_only: bool = False,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.run_dir = Path(run_dir)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        # True: SIGTERM goes to the leader alone, which then shuts its children down itself
        # (tritonserver: terminating its stubs at the same time leaks /tmp/python_env_* dirs).
        self.term_leader_only = term_leader_only
        self.log_path = self.run_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ManagedProcess":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as logf:
            # start_new_session: own process group, so stop() reaches forked children too.
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        log.debug("%s started (pid %s): %s", self.name, self.proc.pid, " ".join(self.argv))
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-n:])

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group (or its leader), wait up to ``timeout``, then SIGKILL the group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.term_leader_only:
                self.proc.terminate()
            else:
                self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.1fs, sending SIGKILL", self.name, timeout)
        # Kill whatever is left of the group (children may outlive a clean parent exit).
        self._signal_group(signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            log.error("%s (pid %s) did not die after SIGKILL", self.name, self.proc.pid)


    def kill(self) -> None:
        """SIGKILL the process group at once: a crash, for drills (nothing drained or committed)."""
        if self.alive:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(5)


class ChildService:
    """What the babelwatch child-process wrappers (worker, notifier) share around their process."""

    process: ManagedProcess

    def stop(self, timeout: float = 15.0) -> None:
        self.process.stop(timeout)

    def kill(self) -> None:
        self.process.kill()

    @property
    def alive(self) -> bool:
        return self.process.alive

    def log_tail(self, n: int = 60) -> str:
        return self.process.log_tail(n)


class StartupFailed(RuntimeError):
    """Raised by a readiness predicate to abort wait_until at once (e.g. a fatal log line)."""


def wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    interval: float = 0.1,
    what: str = "condition",
    process: ManagedProcess | None = None,
) -> float:
    """Poll ``predicate`` until it is truthy; return seconds waited.

    Raises TimeoutError naming ``what`` (with ``process``'s log tail) on timeout, and
    StartupFailed at once if ``process`` exits while waiting. Exceptions raised by the
    predicate count as "not yet", except StartupFailed, which propagates.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            if predicate():
                return time.monotonic() - t0
        except StartupFailed:
            raise
        except Exception as exc:  # not ready yet
            last_exc = exc
        if process is not None and process.proc is not None and not process.alive:
            raise StartupFailed(
                f"{process.name} exited (rc={process.returncode}) while waiting for {what}; "
                f"log {process.log_path}:\n{process.log_tail()}"
            )
        if time.monotonic() >= deadline:
            tail = f"; log {process.log_path}:\n{process.log_tail()}" if process else ""
            cause = f" (last error: {last_exc!r})" if last_exc else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{cause}{tail}")
        time.sleep(interval)
