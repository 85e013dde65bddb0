"""Kafka in one wing (docs/design.md, "Kafka clients"): outside Faust, every Kafka client is built
by stream/clients.py, so connection (and later security) settings have one home. That workers/
imports no Kafka client at all is an import-linter contract (tests/test_architecture.py)."""
from __future__ import annotations

import bw_paths
import ast
from pathlib import Path

from contracts.settings import Settings
from stream import clients

REPO = bw_paths.REPO
CONSTRUCTORS = {"AIOKafkaProducer", "AIOKafkaConsumer", "KafkaProducer", "KafkaConsumer", "KafkaAdminClient"}
# the local broker's readiness probe runs before there is any Settings object to build from
ALLOWED = {"stream/clients.py", "babelwatch/localstack/broker.py"}


def _constructed(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            if name in CONSTRUCTORS:
                out.add(name)
    return out


def test_kafka_clients_are_built_in_one_place():
    offenders = {}
    for pkg in ("babelwatch", "stream", "workers", "fusion_model", "contracts"):
        for f in (REPO / pkg).rglob("*.py"):
            rel = str(f.relative_to(REPO))
            if rel not in ALLOWED and (made := _constructed(f)):
                offenders[rel] = sorted(made)
    assert offenders == {}


def test_for_broker_moves_only_the_bootstrap():
    s = Settings(app_id="x", topic_alerts="a.b")
    local = clients.for_broker(s, "127.0.0.1:19092")
    assert clients.client_kwargs(local) == {"bootstrap_servers": "127.0.0.1:19092"}
    assert (local.app_id, local.topic_alerts) == ("x", "a.b") and s.bootstrap != local.bootstrap
