"""Redis over TLS with an ACL user, for real (issue 12): a real ``redis-server`` with only a TLS
port (certificates made in the test, clients must show one: mTLS), the default user switched off
and one ACL user limited to its key prefix. Clients come from workers/redis_client.py, the one
place Settings become Redis connections; the password is read from a file, as Kubernetes mounts
a Secret, and re-read at each new connection."""
from __future__ import annotations

import asyncio
import shutil

import pytest
import redis

import bw_tls
from babelwatch.localstack.process import ManagedProcess, free_port, wait_until
from contracts.settings import Settings
from workers.redis_client import SettingsCredentials, async_redis, sync_redis

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")]

USER, PASSWORD, PREFIX = "bw-worker", "first-Secret-7f3a", "bwtls"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    d = tmp_path_factory.mktemp("redis-tls")
    pki = bw_tls.make_pki(d / "pki")
    port = free_port()
    conf = d / "redis.conf"  # ACL lines hold spaces: a config file, not argv
    conf.write_text(f"""port 0
tls-port {port}
bind 127.0.0.1 127.0.0.2
tls-cert-file {pki.server_cert}
tls-key-file {pki.server_key}
tls-ca-cert-file {pki.ca}
tls-auth-clients yes
save ""
appendonly no
dir {d}
user default off
user {USER} on >{PASSWORD} ~{PREFIX}:* +@all -@dangerous +acl
""")
    proc = ManagedProcess("redis-tls", ["redis-server", conf], d).start()
    try:
        probe = redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(pki.ca),
                            ssl_certfile=str(pki.client_cert), ssl_keyfile=str(pki.client_key),
                            username=USER, password=PASSWORD, socket_timeout=2)
        wait_until(probe.ping, 15, what="redis-server TLS port", process=proc)
        probe.close()
        yield pki, port, d
    finally:
        proc.stop()


def _settings(pki, port, d, **over) -> Settings:
    pw = d / "redis-password"  # as a Kubernetes Secret volume holds it: one file, trailing newline
    if not pw.exists():
        pw.write_text(PASSWORD + "\n")
    return Settings(**{"redis_url": f"rediss://127.0.0.1:{port}/0", "redis_username": USER,
                       "redis_password_file": pw, "redis_ssl_cafile": pki.ca,
                       "redis_ssl_certfile": pki.client_cert, "redis_ssl_keyfile": pki.client_key, **over})


def test_async_client_over_mtls_with_acl_user_from_file(tls_redis):
    pki, port, d = tls_redis
    s = _settings(pki, port, d)

    async def run() -> bytes:
        r = async_redis(s)
        try:
            await r.set(f"{PREFIX}:k", b"v1")
            return await r.get(f"{PREFIX}:k")
        finally:
            await r.aclose()

    assert asyncio.run(run()) == b"v1"


def test_acl_limits_the_user_to_its_prefix(tls_redis):
    pki, port, d = tls_redis
    r = sync_redis(_settings(pki, port, d))
    try:
        assert r.set(f"{PREFIX}:sync", "x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            r.set("other:key", "x")
    finally:
        r.close()


def test_wrong_password_wrong_ca_and_no_client_cert_are_refused(tls_redis):
    pki, port, d = tls_redis
    bad_pw = d / "bad-password"
    bad_pw.write_text("not-it\n")
    for s, error in [
        (_settings(pki, port, d, redis_password_file=bad_pw), redis.exceptions.AuthenticationError),
        (_settings(pki, port, d, redis_ssl_cafile=pki.other_ca), redis.exceptions.ConnectionError),
        (_settings(pki, port, d, redis_ssl_certfile=None, redis_ssl_keyfile=None), redis.exceptions.ConnectionError),
        (_settings(pki, port, d, redis_url=f"redis://127.0.0.1:{port}/0"), redis.exceptions.ConnectionError),
    ]:
        r = sync_redis(s, socket_timeout=3, socket_connect_timeout=3)
        try:
            with pytest.raises(error):
                r.ping()
        finally:
            r.close()


def test_rotated_password_file_is_used_by_the_next_connection(tls_redis):
    pki, port, d = tls_redis
    rot = d / "rotating-password"
    rot.write_text(PASSWORD + "\n")
    s = _settings(pki, port, d, redis_password_file=rot)
    admin = sync_redis(s)
    try:
        admin.ping()
        # rotation as in deploy/README.md: add the new password, roll the Secret, drop the old one
        admin.acl_setuser(USER, enabled=True, passwords=["+second-Secret-91c2", f"-{PASSWORD}"])
        old = sync_redis(_settings(pki, port, d))  # still the first password: now refused
        try:
            with pytest.raises(redis.exceptions.AuthenticationError):
                old.ping()
        finally:
            old.close()
        rot.write_text("second-Secret-91c2\n")
        fresh = sync_redis(s)  # same Settings object: the file is read again
        try:
            assert fresh.ping()
        finally:
            fresh.close()
    finally:
        admin.acl_setuser(USER, enabled=True, passwords=[f"+{PASSWORD}", "-second-Secret-91c2"])
        admin.close()


def test_the_password_is_never_printed(tls_redis):
    pki, port, d = tls_redis
    s = _settings(pki, port, d, redis_password=PASSWORD, redis_password_file=None)
    r = sync_redis(s)
    try:
        shown = " ".join([repr(s), str(s.model_dump()), s.model_dump_json(), repr(r),
                          repr(r.connection_pool), repr(SettingsCredentials(s))])
        assert r.ping() and PASSWORD not in shown
    finally:
        r.close()


def test_host_name_check_refuses_a_certificate_for_another_name(tls_redis, tmp_path):
    """The certificate names localhost and 127.0.0.1; the server listens on 127.0.0.2 as well (a
    Linux loopback address the certificate does not carry): refused there unless checking is off."""
    pki, port, d = tls_redis
    strict = sync_redis(_settings(pki, port, d, redis_url=f"rediss://127.0.0.2:{port}/0"), socket_timeout=3)
    lax = sync_redis(_settings(pki, port, d, redis_url=f"rediss://127.0.0.2:{port}/0",
                               redis_ssl_check_hostname=False), socket_timeout=3)
    try:
        with pytest.raises(redis.exceptions.ConnectionError, match="(?i)hostname|match|certificate"):
            strict.ping()
        assert lax.ping()
    finally:
        strict.close()
        lax.close()
