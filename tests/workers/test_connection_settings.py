"""Redis and Triton connection arguments from Settings (issue 12), without a server: the real TLS
connections are in test_redis_tls.py; Triton's gRPC TLS is configuration only (deploy/README.md)."""
from __future__ import annotations

from contracts.settings import Settings
from workers.redis_client import SettingsCredentials, redis_kwargs
from workers.scoring.triton import TritonScorer, grpc_tls


def test_plain_redis_gets_no_tls_arguments():
    assert redis_kwargs(Settings(redis_url="redis://r:6379/0")) == {}
    kw = redis_kwargs(Settings(redis_url="redis://r:6379/0", redis_password="p"))
    assert set(kw) == {"credential_provider"} and kw["credential_provider"].get_credentials() == ("p",)


def test_rediss_gets_verified_tls(tmp_path):
    kw = redis_kwargs(Settings(redis_url="rediss://r:6380/0", redis_ssl_cafile=tmp_path / "ca.pem"))
    assert kw["ssl_cert_reqs"] == "required" and kw["ssl_check_hostname"] is True
    assert kw["ssl_ca_certs"] == str(tmp_path / "ca.pem") and kw["ssl_certfile"] is None


def test_acl_user_and_password_file(tmp_path):
    f = tmp_path / "pw"
    f.write_text("from-file\n")
    creds = SettingsCredentials(Settings(redis_username="bw", redis_password_file=f))
    assert creds.get_credentials() == ("bw", "from-file") and "from-file" not in repr(creds)


def test_triton_tls_arguments(tmp_path):
    assert grpc_tls(Settings()) == {}
    s = Settings(triton_ssl=True, triton_ssl_cafile=tmp_path / "ca", triton_ssl_certfile=tmp_path / "c",
                 triton_ssl_keyfile=tmp_path / "k", triton_url="triton:8001")
    assert grpc_tls(s) == {"ssl": True, "root_certificates": str(tmp_path / "ca"),
                           "private_key": str(tmp_path / "k"), "certificate_chain": str(tmp_path / "c")}
    scorer = TritonScorer.from_settings(s)
    assert scorer.tls == grpc_tls(s) and scorer.url == "triton:8001"
