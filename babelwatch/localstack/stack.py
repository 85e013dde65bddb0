"""The whole local stack (broker, Redis, Triton) for dev runs, demos and integration tests.

Why one object: the servers must start in dependency order and, whatever fails half-way,
everything already started must be stopped again in reverse order, so no stray broker,
Redis or Triton (with its /dev/shm regions) outlives a failed run.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Mapping, Sequence

from .broker import TansuBroker
from .redis_server import RedisServer
from .triton import TritonServer
from babelwatch.cli.config import redact_value  # a password in the Redis URL never reaches the log

log = logging.getLogger("babelwatch.localstack")


class LocalStack:
    """Start broker -> Redis (reuse or own) -> Triton; stop in reverse. Usable as ``with``."""

    def __init__(
        self,
        redis_url: str | None = "redis://127.0.0.1:6379/0",
        triton_repo: str | os.PathLike | None = None,
        run_dir: str | os.PathLike | None = None,
        with_triton: bool = True,
        broker_port: int | None = None,
        topics: Mapping[str, int] | None = None,
        redis_persistent: bool = False,
        triton_model_config_name: str | None = None,
        triton_env: Mapping[str, str] | None = None,
        triton_timeout: float = 120.0,
        triton_load_models: Sequence[str] | None = None,
    ) -> None:
        if with_triton and triton_repo is None:
            raise ValueError("with_triton=True needs triton_repo")
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="babelwatch-stack-"))
        self.broker = TansuBroker(port=broker_port, run_dir=self.run_dir / "broker")
        self.redis = RedisServer(run_dir=self.run_dir / "redis", persistent=redis_persistent)
        self.triton = (
            TritonServer(triton_repo, run_dir=self.run_dir / "triton",
                         model_config_name=triton_model_config_name, extra_env=triton_env,
                         load_models=triton_load_models)
            if with_triton else None
        )
        self._redis_wanted = redis_url
        self._topics = dict(topics or {})
        self._triton_timeout = triton_timeout
        self._started: list = []

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def redis_url(self) -> str:
        return self.redis.url

    @property
    def triton_grpc_url(self) -> str | None:
        return self.triton.grpc_url if self.triton else None

    def start(self) -> "LocalStack":
        t0 = time.monotonic()
        log.info("localstack: starting in %s", self.run_dir)
        try:
            log.info("localstack: [1/3] starting Tansu broker ...")
            self.broker.start()
            self._started.append(self.broker)
            if self._topics:
                self.broker.create_topics(self._topics)
                log.info("localstack: topics ready: %s", self._topics)
            log.info("localstack: [2/3] ensuring Redis ...")
            self.redis.ensure(self._redis_wanted)
            self._started.append(self.redis)
            if self.triton is not None:
                log.info("localstack: [3/3] starting Triton (repo %s) ...", self.triton.model_repository)
                self.triton.start(timeout=self._triton_timeout)
                self._started.append(self.triton)
            else:
                log.info("localstack: [3/3] Triton skipped")
        except BaseException:
            log.error("localstack: start failed, stopping what was started")
            self.stop()
            raise
        log.info("localstack: up in %.2fs (kafka %s, redis %s, triton %s)",
                 time.monotonic() - t0, self.bootstrap, redact_value(self.redis_url), self.triton_grpc_url)
        return self

    def stop(self) -> None:
        """Stop everything started, newest first; keep going if one stop fails."""
        while self._started:
            part = self._started.pop()
            try:
                part.stop()
            except Exception:
                log.exception("localstack: failed to stop %s", type(part).__name__)
        log.info("localstack: stopped")

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
