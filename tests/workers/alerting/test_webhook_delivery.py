"""Webhook delivery against a real local HTTP receiver (aiohttp on 127.0.0.1, free port).

Signature (HMAC-SHA256 over timestamp + body), retries with backoff, dead-letter after the last
retry, and the SSRF guard. No traffic leaves the loopback interface: every non-loopback
destination in here is refused BEFORE a connection is made, which the tests assert.
"""
from __future__ import annotations

import ipaddress
import json
import time

import pytest
from bw_http import LocalReceiver, local_receivers

from workers.alerting import cloudevents as ce
from workers.alerting.model import AlertInstance, NotificationGroup, WebhookReceiver
from workers.alerting.sinks.base import DeliveryFailed
from workers.alerting.sinks.netguard import AddressGuard, BlockedDestination, is_public
from workers.alerting.sinks.webhook import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EnvSecrets,
    WebhookSink,
    sign,
    verify_signature,
)

SECRET = b"s3cret-shared-with-the-subscriber"
SECRETS = {"env:BABELWATCH_SECRET_ACME": SECRET}.get
LOCAL = AddressGuard(allow_private=True)
LABELS = {"topic": "AAPL", "language": "en", "detector": "volume_spike", "window": "60s", "severity": "warning"}


def group() -> NotificationGroup:
    now = time.time()
    a = AlertInstance(labels=LABELS, state="firing", active_since=now - 60, last_active_at=now, fired_at=now,
                      last_notified_at=now, annotations={"value": 50.0, "baseline": 10.0})
    return NotificationGroup(group_key="r1:g", route_id="r1", receivers=[], group_labels={"topic": "AAPL"},
                             status="firing", alerts=[a], created_at=now)


def hook(url: str, **kw) -> WebhookReceiver:
    return WebhookReceiver(name="acme", url=url, **{"secret_ref": "env:BABELWATCH_SECRET_ACME", "timeout_s": 2.0,
                                                    "retries": 3, "backoff_s": 0.01, "max_backoff_s": 0.05, **kw})


server = pytest.fixture(local_receivers)  # make(script) -> a started LocalReceiver, stopped after


@pytest.fixture
def dead():
    return []


async def deliver(receiver: WebhookReceiver, dead: list, guard: AddressGuard = LOCAL) -> None:
    sink = WebhookSink(receiver, guard, secrets=SECRETS, dead_letter=dead.append)
    await sink.start()
    try:
        await sink.send(group())
    finally:
        await sink.stop()


# -------------------------------------------------------------------------------------- signature


async def test_signature_verifies_with_shared_secret_only(server, dead):
    srv = await server()
    await deliver(hook(srv.url()), dead)
    assert len(srv.requests) == 1 and dead == []
    req = srv.requests[0]
    assert req.method == "POST" and req.path == "/hook"
    assert req.headers["Content-Type"].startswith("application/cloudevents+json")
    ts, sig = req.headers[TIMESTAMP_HEADER], req.headers[SIGNATURE_HEADER]
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify_signature(SECRET, req.body, ts, sig)
    assert not verify_signature(b"wrong-secret", req.body, ts, sig)
    assert not verify_signature(SECRET, req.body + b" ", ts, sig)            # body tampered
    assert not verify_signature(SECRET, req.body, str(int(ts) + 1), sig)     # timestamp is signed
    assert not verify_signature(SECRET, req.body, ts, sig, now=int(ts) + 3600)  # replayed later
    event = json.loads(req.body)
    ce.validate(event)
    assert event["type"] == "io.babelwatch.alertgroup.firing"
    assert event["data"]["alerts"][0]["labels"] == LABELS and event["data"]["receiver"] == "acme"
    assert req.headers[EVENT_ID_HEADER] == event["id"]


async def test_missing_secret_is_not_sent_unsigned(server, dead):
    srv = await server()
    with pytest.raises(DeliveryFailed):
        await deliver(hook(srv.url(), secret_ref="env:BABELWATCH_SECRET_NOPE"), dead)
    assert srv.requests == [] and len(dead) == 1 and "not found" in dead[0].error


def test_env_secrets_only_under_prefix():
    env = {"BABELWATCH_SECRET_A": "x", "AWS_SECRET_ACCESS_KEY": "y"}
    secrets = EnvSecrets(environ=env)
    assert secrets("env:BABELWATCH_SECRET_A") == b"x"
    assert secrets("env:AWS_SECRET_ACCESS_KEY") is None
    assert secrets("file:/etc/passwd") is None


def test_sign_format():
    assert sign(b"k", "1700000000", b"{}") == sign(b"k", "1700000000", b"{}")
    assert sign(b"k", "1700000000", b"{}") != sign(b"k", "1700000001", b"{}")


# ---------------------------------------------------------------------------------------- retries


async def test_retries_until_success(server, dead):
    srv = await server([503, 500, 200])
    await deliver(hook(srv.url()), dead)
    assert [r.method for r in srv.requests] == ["POST"] * 3 and dead == []
    ids = {r.headers[EVENT_ID_HEADER] for r in srv.requests}
    bodies = {r.body for r in srv.requests}
    assert len(ids) == 1 and len(bodies) == 1  # the same event each time: receivers can dedup
    for r in srv.requests:  # and every attempt carries a valid signature
        assert verify_signature(SECRET, r.body, r.headers[TIMESTAMP_HEADER], r.headers[SIGNATURE_HEADER])


async def test_dead_letter_after_last_retry(server, dead):
    srv = await server([500])
    with pytest.raises(DeliveryFailed):
        await deliver(hook(srv.url(), retries=2), dead)
    assert len(srv.requests) == 3
    assert len(dead) == 1
    d = dead[0]
    assert (d.attempts, d.status, d.receiver, d.receiver_type) == (3, 500, "acme", "webhook")
    assert json.loads(d.body)["id"] == srv.requests[0].headers[EVENT_ID_HEADER]


async def test_client_error_is_not_retried(server, dead):
    srv = await server([404])
    with pytest.raises(DeliveryFailed):
        await deliver(hook(srv.url()), dead)
    assert len(srv.requests) == 1 and dead[0].attempts == 1 and dead[0].status == 404


async def test_timeout_is_retried_then_dead_lettered(server, dead):
    srv = await server(["hang"])
    t0 = time.monotonic()
    with pytest.raises(DeliveryFailed):
        await deliver(hook(srv.url(), timeout_s=0.2, retries=1), dead)
    assert time.monotonic() - t0 < 2.0
    assert len(srv.requests) == 2 and "timeout" in dead[0].error


def test_backoff_is_exponential_and_capped():
    from workers.alerting.sinks.delivery import RetryPolicy

    p = RetryPolicy(backoff_s=0.5, max_backoff_s=3.0, jitter=False)
    assert [p.delay(i) for i in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    j = RetryPolicy(backoff_s=1.0, max_backoff_s=10.0)
    assert all(2.0 <= j.delay(2) <= 4.0 for _ in range(50))


# ------------------------------------------------------------------------------------------- SSRF


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/hook",
    "http://10.1.2.3/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:{port}/hook",
    "http://localhost:{port}/hook",  # a hostname resolving to loopback
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://0.0.0.0:{port}/hook",
    "http://2130706433:{port}/hook",  # 127.0.0.1 as a number
])
async def test_private_destinations_are_refused(server, dead, url):
    srv = await server()
    with pytest.raises(DeliveryFailed):
        await deliver(hook(url.format(port=srv.port)), dead, AddressGuard())
    assert srv.requests == []
    assert len(dead) == 1 and "refused" in dead[0].error and dead[0].attempts == 1  # permanent: no retries


async def test_allow_private_reaches_the_local_receiver(server, dead):
    srv = await server()
    await deliver(hook(srv.url()), dead, AddressGuard(allow_private=True))
    await deliver(hook(f"http://localhost:{srv.port}/hook"), dead, AddressGuard(allow_private=True))
    assert len(srv.requests) == 2 and dead == []


async def test_every_resolved_address_is_checked():
    async def split_answer(host, port):
        return ["93.184.216.34", "127.0.0.1"]  # one public, one loopback: refuse the host

    guard = AddressGuard(resolver=split_answer)
    with pytest.raises(BlockedDestination):
        await guard.check("hooks.example.com", 443)
    with pytest.raises(BlockedDestination):
        await guard.check_url("https://hooks.example.com/x")


async def test_connection_is_pinned_to_the_checked_address(server, dead):
    """The hostname never reaches the system resolver: the guard resolves it, checks it and connects
    to that address itself; the Host header still names the host."""
    srv = await server()

    async def resolver(host, port):
        assert host == "hooks.test"
        return ["127.0.0.1"]

    guard = AddressGuard(allowed_networks=["127.0.0.0/8"], resolver=resolver)
    await deliver(hook(f"http://hooks.test:{srv.port}/hook"), dead, guard)
    assert dead == [] and srv.requests[0].headers["Host"] == f"hooks.test:{srv.port}"


async def test_rebinding_between_check_and_connect_is_refused(server, dead):
    """DNS answers 127.0.0.1 (allowed here) at the pre-check, then 10.0.0.1 at connect time."""
    srv = await server()
    answers = iter([["127.0.0.1"], ["10.0.0.1"], ["10.0.0.1"]])

    async def rebinding(host, port):
        return next(answers)

    guard = AddressGuard(allowed_networks=["127.0.0.0/8"], resolver=rebinding)
    with pytest.raises(DeliveryFailed):
        await deliver(hook(f"http://rebind.test:{srv.port}/hook"), dead, guard)
    assert srv.requests == [] and "10.0.0.1" in dead[0].error


async def test_redirect_to_private_target_is_refused(server, dead):
    srv = await server([("redirect", "http://10.1.2.3/internal")])
    guard = AddressGuard(allowed_networks=["127.0.0.0/8"])  # the receiver itself is allowed
    with pytest.raises(DeliveryFailed):
        await deliver(hook(srv.url()), dead, guard)
    assert len(srv.requests) == 1 and "refused" in dead[0].error


async def test_allowed_307_redirect_is_followed_and_302_is_not(server, dead):
    srv = await server([("redirect", "/moved"), 200])
    await deliver(hook(srv.url()), dead)
    assert [r.path for r in srv.requests] == ["/hook", "/moved"] and dead == []
    assert srv.requests[1].method == "POST" and srv.requests[1].body == srv.requests[0].body
    srv2 = await server([("redirect", "/moved", 302), 200])
    with pytest.raises(DeliveryFailed):
        await deliver(hook(srv2.url()), dead)
    assert len(srv2.requests) == 1 and "redirect not followed" in dead[-1].error


@pytest.mark.parametrize("addr,public", [
    ("8.8.8.8", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("255.255.255.255", False), ("::1", False), ("fe80::1", False), ("fc00::1", False),
    ("ff02::1", False), ("::ffff:10.0.0.1", False), ("::ffff:8.8.8.8", True), ("2002:7f00:1::", False),
    ("64:ff9b::7f00:1", False), ("::", False),
])
def test_is_public(addr, public):
    assert is_public(ipaddress.ip_address(addr)) is public
