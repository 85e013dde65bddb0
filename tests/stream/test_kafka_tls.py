"""Kafka over TLS for real (issue 12): a real TLS terminator (tests/bw_tls.py) in front of a real
Tansu broker that advertises the terminator's address, so every connection a client opens after
bootstrap goes through TLS too. Produced and consumed through it with aiokafka, kafka-python and
the Faust driver's credentials; a wrong CA, a missing client certificate and a wrong host name
are refused. SASL is covered by configuration only (no broker here completes a SASL handshake:
deploy/README.md)."""
from __future__ import annotations

import asyncio
import uuid

import pytest
from kafka.errors import KafkaError

import bw_tls
from babelwatch.localstack.broker import broker_binary
from babelwatch.localstack.process import ManagedProcess, free_port, wait_until
from contracts.settings import Settings
from stream import admin as stream_admin
from stream import clients

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory):
    """(pki, proxy port): Tansu on a private plaintext port, reachable only through mTLS."""
    d = tmp_path_factory.mktemp("kafka-tls")
    pki = bw_tls.make_pki(d / "pki")
    inner, outer = free_port(), free_port()
    proc = ManagedProcess("tansu-tls", [
        broker_binary(), "broker",
        "--listener-url", f"tcp://127.0.0.1:{inner}",
        # clients must come back through the terminator: the broker advertises its address
        "--advertised-listener-url", f"tcp://127.0.0.1:{outer}",
        "--storage-engine", "memory://tansu/",
    ], d).start()
    proxy = bw_tls.TlsProxy(("127.0.0.1", inner), pki.server_cert, pki.server_key, client_ca=pki.ca,
                            port=outer).start()
    try:
        s = _secure(pki, outer)

        def answers() -> bool:
            a = clients.admin(s, "tls-ready", request_timeout_ms=3000)
            try:
                a.list_topics()
                return True
            finally:
                a.close()

        wait_until(answers, 30, interval=0.2, what="Tansu through the TLS terminator", process=proc)
        yield pki, outer, proxy
    finally:
        proxy.stop()
        proc.stop()


def _secure(pki, port: int, **over) -> Settings:
    return Settings(**{"broker_url": f"kafka://127.0.0.1:{port}", "kafka_security_protocol": "SSL",
                       "kafka_ssl_cafile": pki.ca, "kafka_ssl_certfile": pki.client_cert,
                       "kafka_ssl_keyfile": pki.client_key, **over})


def _refused(s: Settings) -> None:
    """kafka-python cannot even bootstrap (a TLS handshake that fails looks like a dead broker)."""
    with pytest.raises(KafkaError, match="bootstrap"):
        a = clients.admin(s, "tls-refused", request_timeout_ms=3000, bootstrap_timeout_ms=3000)
        a.close()


def _topic(s: Settings, partitions: int = 2) -> str:
    name = f"tls-{uuid.uuid4().hex[:8]}"
    stream_admin.ensure_topics(s, {name: partitions})  # kafka-python admin, over TLS
    return name


def test_aiokafka_produces_and_consumes_over_mtls(tls_broker):
    pki, port, proxy = tls_broker
    s = _secure(pki, port)
    topic = _topic(s)
    before = proxy.connections

    async def run() -> list[bytes]:
        p = clients.async_producer(s)
        await p.start()
        try:
            for i in range(20):
                await p.send_and_wait(topic, f"m{i}".encode(), partition=i % 2)
        finally:
            await p.stop()
        c = await clients.start_reader(s, {topic: 2})
        got: list[bytes] = []
        try:
            while len(got) < 20:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=500), 15)
                got += [r.value for rs in batch.values() for r in rs]
        finally:
            await c.stop()
        return got

    got = asyncio.run(run())
    assert sorted(got) == sorted(f"m{i}".encode() for i in range(20))
    assert proxy.connections > before  # the records really went through the terminator


def test_kafka_python_produces_and_consumes_over_mtls(tls_broker):
    pki, port, _ = tls_broker
    s = _secure(pki, port)
    topic = _topic(s, 1)
    p = clients.producer(s)
    try:
        for i in range(10):
            p.send(topic, f"k{i}".encode())
        p.flush(10)
    finally:
        p.close()
    c = clients.consumer(s, topic, consumer_timeout_ms=5000)
    try:
        got = [r.value for r in c]
    finally:
        c.close()
    assert got == [f"k{i}".encode() for i in range(10)]


def test_faust_credentials_reach_the_broker(tls_broker):
    """What Faust's aiokafka driver makes of ``broker_credentials`` (stream/app.py) connects."""
    from aiokafka import AIOKafkaProducer
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    pki, port, _ = tls_broker
    s = _secure(pki, port)
    topic = _topic(s, 1)
    auth = credentials_to_aiokafka_auth(clients.faust_credentials(s))
    assert auth["security_protocol"] == "SSL"

    async def run() -> None:
        p = AIOKafkaProducer(bootstrap_servers=s.bootstrap, **auth)
        await p.start()
        try:
            md = await p.send_and_wait(topic, b"from-faust-credentials")
            assert md.offset == 0
        finally:
            await p.stop()

    asyncio.run(run())


def test_wrong_ca_is_refused_by_both_libraries(tls_broker):
    pki, port, _ = tls_broker
    s = _secure(pki, port, kafka_ssl_cafile=pki.other_ca)

    async def aio() -> None:
        p = clients.async_producer(s, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(p.start(), 20)
        finally:
            await p.stop()

    with pytest.raises(Exception) as aio_err:
        asyncio.run(aio())
    assert "bootstrap" in str(aio_err.value).lower() or "ssl" in str(aio_err.value).lower()
    _refused(s)


def test_client_without_certificate_is_refused(tls_broker):
    """The terminator requires mTLS: a client that trusts the CA but shows no certificate fails."""
    pki, port, _ = tls_broker
    s = Settings(broker_url=f"kafka://127.0.0.1:{port}", kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca)
    _refused(s)


def test_host_name_is_checked_unless_switched_off(tls_broker):
    """A terminator whose certificate (same CA) names other.example: refused with hostname checking,
    accepted without it (then the broker's metadata sends the client to the real terminator)."""
    pki, port, _ = tls_broker
    odd = bw_tls.TlsProxy(tls_broker[2].upstream, pki.odd_cert, pki.odd_key).start()  # the broker's plaintext side
    try:
        strict = _secure(pki, odd.port)
        _refused(strict)
        lax = _secure(pki, odd.port, kafka_ssl_check_hostname=False)
        a = clients.admin(lax, "tls-lax", request_timeout_ms=5000)
        try:
            assert isinstance(a.list_topics(), list)
        finally:
            a.close()
    finally:
        odd.stop()


def test_plaintext_client_gets_nothing_from_the_tls_port(tls_broker):
    _, port, _ = tls_broker
    s = Settings(broker_url=f"kafka://127.0.0.1:{port}")
    _refused(s)


def test_sasl_scram_handshake_reaches_the_broker(tls_broker):
    """What can be proven about SASL here: the client really opens a SCRAM-SHA-512 handshake and
    the broker answers it (Tansu 0.6 without --authentication offers no mechanism: error 33). A
    broker that accepts SASL could not be had (deploy/README.md, "Kafka security")."""
    from aiokafka.errors import KafkaConnectionError

    pki, port, proxy = tls_broker
    s = Settings(broker_url=f"kafka://127.0.0.1:{proxy.upstream[1]}", kafka_security_protocol="SASL_PLAINTEXT",
                 kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="bw", kafka_sasl_password="x")

    async def run() -> None:
        p = clients.async_producer(s, request_timeout_ms=3000)
        try:
            await asyncio.wait_for(p.start(), 15)
        finally:
            await p.stop()

    with pytest.raises(KafkaConnectionError) as err:
        asyncio.run(run())
    assert "bootstrap" in str(err.value)
