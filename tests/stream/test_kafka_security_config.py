"""Kafka security from Settings without a server (issue 12): every mode becomes the right arguments
for aiokafka, kafka-python and Faust; half-configured security fails at start; secrets come from
files, are read again at each connect and never appear in a settings dump. The TLS modes are also
proven against a real broker behind a real terminator (test_kafka_tls.py)."""
from __future__ import annotations

import ssl

import pytest
from pydantic import ValidationError

from contracts.settings import Settings
from stream import admin, clients

SECRET = "Zq-very-secret-4417"


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_sasl_modes_for_both_libraries_and_faust(protocol, mechanism):
    s = Settings(kafka_security_protocol=protocol, kafka_sasl_mechanism=mechanism, kafka_sasl_username="bw-worker",
                 kafka_sasl_password=SECRET)
    for library in ("aiokafka", "kafka-python"):
        kw = clients.client_kwargs(s, library)
        assert (kw["security_protocol"], kw["sasl_mechanism"]) == (protocol, mechanism)
        assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("bw-worker", SECRET)
    aio, kp = clients.client_kwargs(s), clients.client_kwargs(s, "kafka-python")
    if protocol == "SASL_SSL":
        assert isinstance(aio["ssl_context"], ssl.SSLContext) and aio["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        assert kp["ssl_check_hostname"] is True and "ssl_context" not in kp
    else:
        assert "ssl_context" not in aio and "ssl_cafile" not in kp
    creds = clients.faust_credentials(s)
    assert (creds.protocol.value, creds.mechanism.value, creds.username) == (protocol, mechanism, "bw-worker")
    assert SECRET not in repr(creds)


def test_plaintext_adds_nothing():
    assert clients.client_kwargs(Settings(broker_url="kafka://b:1")) == {"bootstrap_servers": "b:1"}
    assert clients.faust_credentials(Settings()) is None


def test_ssl_context_honours_hostname_switch(tmp_path):
    on = clients.ssl_context(Settings(kafka_security_protocol="SSL"))
    off = clients.ssl_context(Settings(kafka_security_protocol="SSL", kafka_ssl_check_hostname=False))
    assert on.check_hostname and not off.check_hostname and off.verify_mode == ssl.CERT_REQUIRED
    kp = clients.client_kwargs(Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "ca.pem",
                                        kafka_ssl_check_hostname=False), "kafka-python")
    assert kp["ssl_cafile"] == str(tmp_path / "ca.pem") and kp["ssl_check_hostname"] is False


def test_password_file_wins_and_is_read_again(tmp_path):
    f = tmp_path / "kafka-password"
    f.write_text("first\n")
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password="ignored",
                 kafka_sasl_password_file=f)
    assert clients.client_kwargs(s)["sasl_plain_password"] == "first"
    f.write_text("rotated\n")
    assert clients.client_kwargs(s)["sasl_plain_password"] == "rotated"


@pytest.mark.parametrize("bad", [
    {"kafka_security_protocol": "SASL_SSL"},                                  # no user, no password
    {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u"},  # no password
    {"kafka_ssl_certfile": "/c.pem"},                                         # cert without key
    {"redis_ssl_keyfile": "/k.pem"},                                          # key without cert
    {"topic_replication_factor": 1, "topic_min_insync_replicas": 2},
    {"kafka_security_protocol": "SSL_PLAINTEXT"},
    {"kafka_sasl_mechanism": "GSSAPI"},
])
def test_half_configured_security_fails_at_start(bad):
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_secrets_never_in_a_settings_dump(monkeypatch):
    monkeypatch.setenv("BABELWATCH_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("BABELWATCH_REDIS_PASSWORD", SECRET)
    monkeypatch.setenv("BABELWATCH_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BABELWATCH_KAFKA_SASL_USERNAME", "u")
    s = Settings()
    assert s.kafka_password() == SECRET and s.redis_secret() == SECRET
    for shown in (repr(s), str(s), str(s.model_dump()), s.model_dump_json()):
        assert SECRET not in shown


def test_topics_get_the_replication_settings():
    t = admin.new_topic(Settings(topic_replication_factor=3, topic_min_insync_replicas=2), "x", 6)
    assert (t.num_partitions, t.replication_factor, t.topic_configs) == (6, 3, {"min.insync.replicas": "2"})
    assert admin.new_topic(Settings(), "y", 1).topic_configs == {}
