"""The finished CLI, run as the user runs it (a subprocess): --version, exit codes and one-line
errors when the broker, Redis or Triton cannot be reached (no tracebacks), `config` with secrets
redacted, `produce --json` against a real Tansu broker, the progress bar kept off pipes."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from babelwatch.localstack import free_port

REPO = Path(__file__).resolve().parents[3]
SECRET = "tok-do-not-print-0123456789"
REDIS_PW = "redis-pw-do-not-print"


def bw(*args: str, env: dict | None = None, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BABELWATCH_")}
    return subprocess.run([sys.executable, "-m", "babelwatch", *args], input=stdin, capture_output=True, text=True,
                          env={**clean, **(env or {})}, cwd=REPO, timeout=timeout)


def closed_port() -> int:
    return free_port()  # nothing listens there


def one_line_error(p: subprocess.CompletedProcess, starts: str) -> None:
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"babelwatch: error: {starts}"), p.stderr
    assert "Traceback" not in p.stderr


def test_version_and_documented_exit_codes():
    p = bw("--version")
    assert p.returncode == 0 and p.stdout.strip().startswith("babelwatch 0.")
    helptext = bw("--help").stdout
    for code in ("0 success", "2 usage", "3 the Kafka broker cannot be reached", "4 Redis cannot be reached",
                 "5 Triton cannot be reached"):
        assert code in " ".join(helptext.split()), code
    assert "config" in helptext


def test_broker_unreachable_is_exit_3_one_line():
    env = {"BABELWATCH_BROKER_URL": f"kafka://127.0.0.1:{closed_port()}"}
    for args in (("produce",), ("tail", "events", "--timeout", "1"), ("worker",), ("notify",)):
        p = bw(*args, env=env)
        assert p.returncode == 3, (args, p.stderr)
        one_line_error(p, "cannot reach the Kafka broker at 127.0.0.1:")
        assert "BABELWATCH_BROKER_URL" in p.stderr


def test_redis_unreachable_is_exit_4_and_hides_the_password():
    with socket.create_server(("127.0.0.1", 0)) as fake_broker:  # the broker check is a TCP connect
        env = {"BABELWATCH_BROKER_URL": f"kafka://127.0.0.1:{fake_broker.getsockname()[1]}",
               "BABELWATCH_REDIS_URL": f"redis://:{REDIS_PW}@127.0.0.1:{closed_port()}/0"}
        p = bw("notify", env=env)
    assert p.returncode == 4, p.stderr
    one_line_error(p, "cannot reach Redis at 127.0.0.1:")
    assert REDIS_PW not in p.stderr + p.stdout


def test_triton_unreachable_is_exit_5():
    p = bw("score", "--triton", f"127.0.0.1:{closed_port()}", stdin="")
    assert p.returncode == 5, p.stderr
    one_line_error(p, "cannot reach Triton at 127.0.0.1:")


def test_usage_errors_are_exit_2():
    assert bw("--log-level", "loud", "config").returncode == 2
    p = bw("config", env={"BABELWATCH_WINDOW_S": "sixty"})
    assert p.returncode == 2
    one_line_error(p, "bad setting BABELWATCH_WINDOW_S")
    p = bw("produce", "/nonexistent/events.jsonl", env={"BABELWATCH_BROKER_URL": "kafka://127.0.0.1:1"})
    assert p.returncode == 3  # the broker is checked first


def test_config_prints_effective_settings_with_secrets_redacted(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "babelwatch_api_token").write_text(SECRET)
    env = {"BABELWATCH_SECRETS_DIR": str(secrets), "BABELWATCH_REDIS_URL": f"redis://:{REDIS_PW}@10.1.2.3:6379/0",
           "BABELWATCH_WINDOW_S": "42"}
    p = bw("config", env=env)
    assert p.returncode == 0, p.stderr
    lines = dict(line.split("=", 1) for line in p.stdout.splitlines())
    assert lines["BABELWATCH_WINDOW_S"] == "42"
    assert lines["BABELWATCH_API_TOKEN"] == "**********"
    assert lines["BABELWATCH_REDIS_URL"] == "redis://:***@10.1.2.3:6379/0"
    assert lines["BABELWATCH_LOG_FORMAT"] == "logfmt"
    assert SECRET not in p.stdout + p.stderr and REDIS_PW not in p.stdout + p.stderr
    out = json.loads(bw("config", "--json", env=env).stdout)
    assert out["api_token"] == "**********" and out["window_s"] == 42 and out["api_tokens_file"] is None
    assert SECRET not in json.dumps(out)


def test_log_format_json_from_the_flag():
    p = bw("--log-format", "json", "config", env={"BABELWATCH_BROKER_URL": "kafka://127.0.0.1:1"})
    assert p.returncode == 0  # config needs no server


@pytest.mark.integration
def test_produce_json_against_a_real_broker(tmp_path):
    from babelwatch.localstack.broker import TansuBroker

    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps({"id": f"e{i}", "source": "news", "topic": "T", "text": "hi"})
                                for i in range(25)) + "\nnot json\n\n")
    with TansuBroker(run_dir=tmp_path) as broker:
        broker.create_topics({"cli.events": 1})
        p = bw("produce", str(events), "--topic", "cli.events", "--json",
               env={"BABELWATCH_BROKER_URL": f"kafka://{broker.bootstrap}"})
        assert p.returncode == 0, p.stderr
        out = json.loads(p.stdout)
        assert out["topic"] == "cli.events" and out["sent"] == 26 and out["seconds"] >= 0
        assert "\x1b[" not in p.stderr  # no progress bar drawn into a pipe


def test_a_server_that_cannot_bind_is_exit_1_with_a_parsable_log():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        p = bw("--log-format", "json", "api", "--port", str(port), env={"BABELWATCH_API_TOKEN": SECRET})
    assert p.returncode == 1, p.stderr
    *logs, last = p.stderr.strip().splitlines()
    assert last == "babelwatch: error: api stopped with status 3 (see the log above)"
    entries = [json.loads(line) for line in logs]  # uvicorn's own lines come through babelwatch.logs
    assert any(e["logger"] == "uvicorn.error" and "address already in use" in e["msg"] for e in entries)
    assert SECRET not in p.stderr
