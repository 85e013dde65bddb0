"""Redis for local runs: reuse one that already answers, else start and own a private one.

Why: CI and dev machines already run ``redis-server`` on 6379, and stopping someone
else's Redis would be rude and destructive, so a Redis we did not start is never stopped.
When nothing answers we start ``redis-server`` from PATH on a free port, without
persistence by default (``persistent=True`` turns on AOF for restart/durability tests).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import redis

from .process import ManagedProcess, free_port, wait_until

log = logging.getLogger("babelwatch.localstack")


def _pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
    finally:
        client.close()


class RedisServer:
    """A Redis at ``url`` — either found (``owned`` False) or started here (``owned`` True)."""

    def __init__(self, run_dir: str | os.PathLike | None = None, persistent: bool = False) -> None:
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="babelwatch-redis-"))
        self.persistent = persistent
        self.owned = False
        self.process: ManagedProcess | None = None
        self.ready_seconds: float | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("RedisServer.ensure() has not been called")
        return self._url

    def ensure(self, url: str | None = None, timeout: float = 15.0) -> str:
        """Return a URL of a Redis that answers PING: ``url`` if it does, else our own one."""
        if url and _pings(url):
            self._url, self.owned = url, False
            log.info("redis: using existing server at %s (not owned)", url)
            return url
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(f"no Redis answers at {url!r} and redis-server is not on PATH")
        port = free_port()
        data_dir = self.run_dir / "redis-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary, "--bind", "127.0.0.1", "--port", str(port),
            "--save", "", "--dir", str(data_dir), "--daemonize", "no",
            "--appendonly", "yes" if self.persistent else "no",
        ]
        self.process = ManagedProcess("redis", argv, self.run_dir).start()
        self.owned = True
        # Keep the database number of the requested URL, if any.
        db = url.rsplit("/", 1)[-1] if url and url.rsplit("/", 1)[-1].isdigit() else "0"
        own_url = f"redis://127.0.0.1:{port}/{db}"
        try:
            self.ready_seconds = wait_until(
                lambda: _pings(own_url), timeout, interval=0.05,
                what=f"redis-server PING at {own_url}", process=self.process,
            )
        except BaseException:
            self.stop()
            raise
        self._url = own_url
        log.info("redis: started own server at %s in %.2fs (wanted %s)", own_url, self.ready_seconds, url)
        return own_url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server only if we started it."""
        if self.owned and self.process is not None:
            self.process.stop(timeout)
            log.info("redis at %s stopped", self._url)
        self.process = None
        self.owned = False
