"""The deployment as its users run it (issue 12): the images of deploy/Dockerfile are built, the
compose stack (deploy/docker-compose.yml + the override that runs here, docker-compose.local.yml)
comes up, the sample stream is replayed from OUTSIDE the containers, the TSLA burst becomes a
firing alert on the alerts topic and at a webhook receiver on the host, and ``down -v`` removes
everything. Docker is installed and started by deploy/docker-up.sh when missing (and stopped again
if this test started it). Measurements: deploy/README.md."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

import bw_paths
from babelwatch.localstack.process import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

REPO = bw_paths.REPO
DEPLOY = REPO / "deploy"
TOKEN = "deploy-test-" + uuid.uuid4().hex[:12]
WINDOW = 5


def _run(argv, timeout, env=None, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run([str(a) for a in argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv[:3]} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


@pytest.fixture(scope="module")
def docker():
    if os.geteuid() != 0 and shutil.which("docker") is None and shutil.which("sudo") is None:
        pytest.skip("neither Docker nor root here")
    t0 = time.monotonic()
    out = _run([DEPLOY / "docker-up.sh"], timeout=900).stdout
    started = [int(line.split("=", 1)[1]) for line in out.splitlines() if line.startswith("DOCKERD_PID=")]
    print(f"docker ready in {time.monotonic() - t0:.0f}s")
    yield
    for pid in started:  # only a daemon this test started
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


class _Hooks(BaseHTTPRequestHandler):
    seen: list[tuple[str, bytes]]

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def _compose(project: str, env: dict, *args: str, timeout: float = 600, check: bool = True):
    return _run(["docker-compose", "-p", project, "-f", DEPLOY / "docker-compose.yml",
                 "-f", DEPLOY / "docker-compose.local.yml", *args], timeout=timeout, env=env, check=check)


def _wait(pred, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = pred()
            if got:
                return got
        except Exception:  # not yet
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def test_compose_stack_turns_the_tsla_burst_into_an_alert(docker, tmp_path):
    from conftest import ensure_model_built
    from fusion_model.build import export_repository

    timings: dict[str, float] = {}
    t = time.monotonic()
    build_env = {**os.environ, "BASE_IMAGE": "local/debian:bookworm"}
    sizes = _run([DEPLOY / "build-images.sh", "runtime", "triton", "tansu", "redis"], timeout=1500,
                 env=build_env).stdout
    timings["build"] = time.monotonic() - t
    print(sizes)

    ensure_model_built()
    seed = export_repository(tmp_path / "models")  # real files: what the model volume receives
    seed.chmod(0o755)
    tmp_path.chmod(0o755)

    octet = random.randint(100, 250)
    gateway = f"172.29.{octet}.1"
    project = f"bwdeploy{uuid.uuid4().hex[:6]}"
    api_port = free_port()
    secrets = tmp_path / "secrets"  # as an operator provides them: files, readable by the services' users
    secrets.mkdir()
    (secrets / "redis-password").write_text(uuid.uuid4().hex + "\n")
    (secrets / "api-tokens").write_text(f"deploy-test write {TOKEN}\n")
    for f in [secrets, *secrets.iterdir()]:
        f.chmod(0o755 if f.is_dir() else 0o644)
    env = {**os.environ, "BW_SECRETS_DIR": str(secrets), "BW_GATEWAY": gateway, "BW_SUBNET": f"172.29.{octet}.0/24", "BW_MODEL_SEED": str(seed),
           "BW_API_PORT": str(api_port), "BW_WINDOW_S": str(WINDOW),
           "BW_ALERTING_ALLOWED_NETWORKS": f"172.29.{octet}.0/24"}
    hooks = None
    try:
        t = time.monotonic()
        # 2 cores here: one worker and one API replica (production: --scale worker=N)
        _compose(project, env, "up", "-d", "--scale", "worker=1", "--scale", "api=1", timeout=900)
        api = f"http://127.0.0.1:{api_port}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        _wait(lambda: httpx.get(f"{api}/ready", timeout=3).status_code == 200, 240, "the notifier's /ready")

        def worker_ready() -> bool:
            # its healthcheck (/live on :9400) once the worker serves it; until then its own log line
            cid = _compose(project, env, "ps", "-q", "worker").stdout.split()[0]
            state = json.loads(_run(["docker", "inspect", cid], timeout=30).stdout)[0]["State"]
            if state.get("Health", {}).get("Status") == "healthy":
                return True
            logs = _run(["docker", "logs", cid], timeout=30)
            return state["Running"] and "partitions assigned" in logs.stdout + logs.stderr

        _wait(worker_ready, 300, "the worker (healthy, or joined its group)", interval=3)
        timings["up"] = time.monotonic() - t

        # a webhook receiver on the host, on the compose network's gateway (containers reach it there)
        _Hooks.seen = []
        hooks = ThreadingHTTPServer((gateway, 0), _Hooks)
        threading.Thread(target=hooks.serve_forever, daemon=True).start()
        route = {"id": "tsla-desk", "matchers": [{"name": "topic", "op": "=", "value": "TSLA"}],
                 "group_by": ["topic"], "group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h",
                 "receivers": [{"type": "webhook", "name": "tsla-hook", "retries": 3, "backoff_s": 0.5,
                                "timeout_s": 5, "url": f"http://{gateway}:{hooks.server_address[1]}/tsla"}]}
        created = httpx.post(f"{api}/v1/subscriptions", json=route, headers=auth, timeout=10)
        assert created.status_code == 201, created.text
        time.sleep(3)  # > the router's refresh: the subscription is loaded

        # replay the sample stream from outside the containers, through the published broker port
        t = time.monotonic()
        host = {**os.environ, "BABELWATCH_BROKER_URL": f"kafka://{gateway}:19092"}
        _run([sys.executable, "-m", "babelwatch", "produce", "--rate", "8"], timeout=300, env=host)
        timings["replay"] = time.monotonic() - t

        from kafka import KafkaConsumer

        def tsla_alert_on_topic():
            c = KafkaConsumer("babelwatch.alerts", bootstrap_servers=f"{gateway}:19092", group_id=None,
                              auto_offset_reset="earliest", consumer_timeout_ms=3000)
            try:
                alerts = [json.loads(r.value) for r in c]
            finally:
                c.close()
            return [a for a in alerts if "firing" in a.get("type", "")
                    and (a.get("data") or {}).get("labels", {}).get("topic") == "TSLA"]

        fired = _wait(tsla_alert_on_topic, 120, "a firing TSLA alert on babelwatch.alerts", interval=3)
        assert fired[0]["data"]["labels"]["detector"] == "volume_spike"
        _wait(lambda: _Hooks.seen, 60, "the webhook delivery")
        path, body = _Hooks.seen[0]
        event = json.loads(body)
        assert path == "/tsla" and event["type"] == "io.babelwatch.alertgroup.firing"
        assert event["data"]["groupLabels"] == {"topic": "TSLA"}
        timings["alert"] = time.monotonic() - t
        # memory per role after the stream, for deploy/k8s resources (printed, not asserted)
        ids = _compose(project, env, "ps", "-q").stdout.split()
        print(_run(["docker", "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *ids], timeout=60).stdout)
    finally:
        if hooks is not None:
            hooks.shutdown()
            hooks.server_close()
        t = time.monotonic()
        logs = _compose(project, env, "logs", "--no-color", "--tail", "30", timeout=120, check=False).stdout
        down = _compose(project, env, "down", "-v", "--remove-orphans", timeout=300, check=False)
        timings["down"] = time.monotonic() - t
        print("timings", {k: round(v) for k, v in timings.items()})
        if down.returncode != 0:
            print(logs[-5000:])
    left = _run(["docker", "volume", "ls", "-q", "--filter", f"name={project}"], timeout=30).stdout.split()
    assert left == [], f"down -v left volumes {left}"
