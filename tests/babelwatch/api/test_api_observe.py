"""`babelwatch api`'s /metrics, /live and /ready: open (no token), the requests counted per route
template (never the raw path: a hostile path cannot grow the series), Redis figures and build info
exported, the exposition clean for `promtool check metrics`; with Redis gone, /ready and
babelwatch_dependency_up say so while /live stays ok (the process is not stuck)."""
from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest

from bw_api import WRITE_TOKEN, api_server, bearer
from babelwatch.localstack.process import free_port

pytestmark = pytest.mark.integration


def test_metrics_live_ready_open_and_bounded(tmp_path):
    with api_server(tmp_path) as api:
        with httpx.Client(base_url=api.base, timeout=5) as c:
            assert c.get("/live").json() == {"status": "ok", "reason": "ok"}
            assert c.get("/ready").json()["status"] == "ready"
            assert c.get("/health").json() == {"status": "ok"}
            assert c.get("/v1/topics", headers=bearer(WRITE_TOKEN)).status_code == 200
            for i in range(50):  # hostile paths: one series for all of them
                c.get(f"/v1/no-such-{i}/{'x' * 100}", headers=bearer(WRITE_TOKEN))
            c.get("/v1/topics")  # no token: 401, counted too
            text = c.get("/metrics").text
        assert 'babelwatch_api_requests_total{code="200",method="GET",route="/v1/topics"} 1.0' in text
        assert 'babelwatch_api_requests_total{code="401",method="GET",route="unmatched"} 1.0' in text
        assert 'babelwatch_api_requests_total{code="404",method="GET",route="unmatched"} 50.0' in text
        assert "no-such" not in text
        assert 'babelwatch_build_info{component="api"' in text
        assert 'babelwatch_dependency_up{dependency="redis"} 1.0' in text
        assert 'babelwatch_outbox_depth{outbox="alerts"} 0.0' in text
        assert "process_resident_memory_bytes" in text
        out = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"], input=text.encode(),
                             capture_output=True, timeout=30)
        assert out.returncode == 0 and not out.stdout.strip(), out.stdout.decode() + out.stderr.decode()


def test_redis_gone_unready_but_live(tmp_path):
    with api_server(tmp_path, BABELWATCH_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0") as api:
        with httpx.Client(base_url=api.base, timeout=10) as c:
            r = c.get("/ready")
            assert r.status_code == 503 and r.json()["redis"] == "ConnectionError"
            assert c.get("/live").status_code == 200
            text = c.get("/metrics").text
        assert 'babelwatch_dependency_up{dependency="redis"} 0.0' in text
