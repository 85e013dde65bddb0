"""Triton gRPC over TLS for real (issue 12): the worker's scorer, built from Settings with
``triton_ssl``, scores through a real TLS terminator (tests/bw_tls.py, ALPN h2) in front of the
real Triton of the local stack; a wrong CA and a missing client certificate are refused. Triton's
own ``--grpc-use-ssl`` flags are the production equivalent (deploy/README.md)."""
from __future__ import annotations

import asyncio

import pytest

import bw_tls
from contracts.settings import Settings
from workers.scoring import ScoreInput
from workers.scoring.triton import TritonScorer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def triton_tls(stack, tmp_path_factory):
    pki = bw_tls.make_pki(tmp_path_factory.mktemp("triton-tls") / "pki")
    host, port = stack.triton_grpc_url.rsplit(":", 1)
    proxy = bw_tls.TlsProxy((host, int(port)), pki.server_cert, pki.server_key, client_ca=pki.ca,
                            alpn=["h2"]).start()
    yield pki, proxy
    proxy.stop()


def _settings(pki, proxy, **over) -> Settings:
    return Settings(**{"triton_url": f"127.0.0.1:{proxy.port}", "triton_ssl": True, "triton_ssl_cafile": pki.ca,
                       "triton_ssl_certfile": pki.client_cert, "triton_ssl_keyfile": pki.client_key, **over})


async def _score(s: Settings, **kw):
    scorer = TritonScorer.from_settings(s, **kw)
    await scorer.start()
    try:
        return await scorer.score([ScoreInput("Shares of TSLA soar after record deliveries", None, "en")])
    finally:
        await scorer.stop()


def test_scorer_scores_over_mtls(triton_tls):
    pki, proxy = triton_tls
    before = proxy.connections
    out = asyncio.run(asyncio.wait_for(_score(_settings(pki, proxy)), 60))
    assert len(out) == 1 and out[0].error is None and abs(sum(out[0].probabilities.values()) - 1) < 1e-3
    assert proxy.connections > before


@pytest.mark.parametrize("over", [
    {"triton_ssl_cafile": "OTHER"},                               # a CA that did not sign the server
    {"triton_ssl_certfile": None, "triton_ssl_keyfile": None},    # no client certificate
])
def test_wrong_ca_or_no_client_certificate_is_refused(triton_tls, over):
    pki, proxy = triton_tls
    over = {k: (pki.other_ca if v == "OTHER" else v) for k, v in over.items()}
    with pytest.raises(Exception) as err:
        # max_retries: refused, not waited for forever (the worker itself would keep waiting)
        asyncio.run(asyncio.wait_for(_score(_settings(pki, proxy, **over), max_retries=1), 30))
    assert "UNAVAILABLE" in str(err.value) or "ssl" in str(err.value).lower()
