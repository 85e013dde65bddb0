"""`babelwatch subscriptions ...` and `babelwatch silences ...` against a real `babelwatch api`
process (on a free port, reading the machine's Redis under its own key prefix)."""
from __future__ import annotations

import bw_paths
import io
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from babelwatch.cli import main
from babelwatch.localstack.process import free_port
from bw_api import WRITE_TOKEN as TOKEN, api_server
from contracts.settings import get_settings

pytestmark = pytest.mark.integration

REPO = bw_paths.REPO
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def api_url(tmp_path_factory):
    with api_server(tmp_path_factory.mktemp("cli-api")) as srv:
        yield srv.base


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(api_url, monkeypatch, capsys):
    """Runs ``babelwatch ARGS --api <the test API>`` in-process; the token comes from the env."""
    monkeypatch.setenv("BABELWATCH_API_TOKEN", TOKEN)

    def run(*args: str, api: str = api_url, stdin: str | None = None) -> Result:
        get_settings.cache_clear()  # settings are read from the env as monkeypatched now
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main([*args, "--api", api])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    yield run
    get_settings.cache_clear()


def one_line_error(res: Result, *fragments: str) -> None:
    assert res.code != 0, res
    assert res.out == ""
    assert res.err.startswith("babelwatch: error: ") and res.err.count("\n") == 1, res.err
    assert "Traceback" not in res.err
    for f in fragments:
        assert f in res.err, res.err


def route(route_id: str) -> dict:
    return {"id": route_id, "description": "TSLA desk",
            "matchers": ["topic=TSLA", {"name": "severity", "op": "=~", "value": "warning|critical"}],
            "group_by": ["topic", "language"], "group_wait": "10s",
            "receivers": [{"type": "webhook", "url": "https://hooks.example.com/bw",
                           "secret_ref": "env:BABELWATCH_SECRET_DESK"}]}


def test_subscription_add_list_get_delete(cli, tmp_path):
    rid = f"desk-{uuid.uuid4().hex[:6]}"
    f = tmp_path / "route.json"
    f.write_text(json.dumps(route(rid)))

    added = cli("subscriptions", "add", "-f", str(f))
    assert (added.code, added.out.strip()) == (0, rid), added

    listed = cli("subscriptions", "list")
    assert listed.code == 0
    header, *rows = listed.out.splitlines()
    assert header.split() == ["ID", "MATCHERS", "GROUP_BY", "RECEIVERS", "DESCRIPTION"]
    row = next(r for r in rows if r.startswith(rid))
    assert 'topic="TSLA",severity=~"warning|critical"' in row
    assert "topic,language" in row and "TSLA desk" in row
    assert "webhook:https://hooks.example.com/<secret>" in row  # redacted on read

    as_json = cli("subscriptions", "list", "--json").json()
    mine = next(r for r in as_json if r["id"] == rid)
    assert mine["matchers"][0] == {"name": "topic", "op": "=", "value": "TSLA"}
    assert mine["group_wait"] == 10.0 and mine["receivers"][0]["name"] == "webhook-0"

    got = cli("subscriptions", "get", rid)
    assert got.code == 0
    fields = dict(line.split(None, 1) for line in got.out.splitlines() if not line.startswith("receiver "))
    assert fields["id"] == rid and fields["group_by"] == "topic, language" and fields["group_wait"] == "10s"
    assert "receiver webhook-0  webhook:https://hooks.example.com/<secret>" in got.out
    assert cli("subscriptions", "get", rid, "--json").json() == mine

    # the same id again: the API's 409, as one line
    one_line_error(cli("subscriptions", "add", "-f", str(f)), "409", "exists")

    deleted = cli("subscriptions", "delete", rid)
    assert (deleted.code, deleted.out.strip()) == (0, f"deleted subscription {rid}")
    assert rid not in [r["id"] for r in cli("subscriptions", "list", "--json").json()]
    one_line_error(cli("subscriptions", "get", rid), "404", f"no subscription '{rid}'")
    one_line_error(cli("subscriptions", "delete", rid), "404")


def test_subscription_from_stdin_and_validation_errors(cli, tmp_path):
    rid = f"stdin-{uuid.uuid4().hex[:6]}"
    added = cli("subscriptions", "add", "-f", "-", "--json", stdin=json.dumps(route(rid)))
    assert added.code == 0 and added.json()["id"] == rid
    replaced = cli("subscriptions", "add", "--replace", "-f", "-", stdin=json.dumps({**route(rid), "group_by": []}))
    assert replaced.code == 0
    assert cli("subscriptions", "get", rid, "--json").json()["group_by"] == []
    assert cli("subscriptions", "delete", rid).code == 0

    # pydantic's 422 details, flattened to one line
    bad = cli("subscriptions", "add", "-f", "-", stdin=json.dumps({**route(rid), "receivers": []}))
    one_line_error(bad, "422", "receivers:")
    bad = cli("subscriptions", "add", "-f", "-", stdin=json.dumps({**route(rid), "matchers": ["topic=~("]}))
    one_line_error(bad, "422", "invalid regex")
    # not JSON / not an object / no file: caught before any request (usage errors)
    res = cli("subscriptions", "add", "-f", "-", stdin="{nope")
    one_line_error(res, "stdin is not JSON")
    assert res.code == 2
    one_line_error(cli("subscriptions", "add", "-f", "-", stdin="[]"), "one JSON object")
    one_line_error(cli("subscriptions", "add", "-f", str(tmp_path / "missing.json")), "cannot read")
    assert cli("subscriptions", "get", rid).code == 1  # nothing was created by the failures


def test_silence_add_list_expire(cli):
    comment = f"earnings call {uuid.uuid4().hex[:6]}"
    t0 = time.time()
    added = cli("silences", "add", "--matcher", "topic=TSLA", "--matcher", "language=~e.", "--duration", "2h",
                "--comment", comment, "--created-by", "ops@desk")
    assert added.code == 0, added
    sid = added.out.strip()

    active = cli("silences", "list", "--state", "active", "--json").json()
    mine = next(s for s in active if s["id"] == sid)
    assert mine["matchers"] == [{"name": "topic", "op": "=", "value": "TSLA"},
                                {"name": "language", "op": "=~", "value": "e."}]
    assert mine["created_by"] == "ops@desk" and mine["comment"] == comment
    assert t0 - 1 <= mine["starts_at"] <= time.time() and mine["ends_at"] - mine["starts_at"] == pytest.approx(7200)

    table = cli("silences", "list")
    header, *rows = table.out.splitlines()
    assert header.split() == ["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "CREATED_BY", "COMMENT"]
    row = next(r for r in rows if r.startswith(sid))
    assert row.split()[1] == "active" and 'topic="TSLA",language=~"e."' in row and row.endswith(comment)

    expired = cli("silences", "expire", sid)
    assert (expired.code, expired.out.strip()) == (0, f"expired silence {sid}")
    assert sid not in [s["id"] for s in cli("silences", "list", "--state", "active", "--json").json()]
    assert sid in [s["id"] for s in cli("silences", "list", "--state", "expired", "--json").json()]
    row = next(r for r in cli("silences", "list").out.splitlines() if r.startswith(sid))
    assert row.split()[1] == "expired"
    one_line_error(cli("silences", "expire", "no-such-silence"), "404", "no silence 'no-such-silence'")


def test_silence_with_explicit_window_is_pending_until_it_starts(cli):
    sid = f"maint-{uuid.uuid4().hex[:6]}"
    added = cli("silences", "add", "-m", "topic!=AAPL", "--starts-at", "2099-01-01T00:00:00Z",
                "--ends-at", "2099-01-01T02:30:00Z", "--id", sid, "--json")
    assert added.code == 0 and added.json()["id"] == sid
    assert (added.json()["starts_at"], added.json()["ends_at"]) == (4070908800.0, 4070917800.0)
    pending = cli("silences", "list", "--state", "pending", "--json").json()
    assert sid in [s["id"] for s in pending]
    assert cli("silences", "expire", sid).code == 0  # a pending silence is simply removed
    assert sid not in [s["id"] for s in cli("silences", "list", "--json").json()]
    # an end before the start is refused here, before any request
    res = cli("silences", "add", "-m", "topic=X", "--starts-at", "2099-01-02", "--ends-at", "2099-01-01")
    one_line_error(res, "must end after it starts")
    assert res.code == 2


@pytest.mark.parametrize("matcher, says", [
    ("topic", "is not 'name=value'"),
    ("topic=~(", "invalid regex"),
    ("9lives=x", "is not 'name=value'"),
])
def test_bad_matcher_syntax_is_a_clear_usage_error(cli, matcher, says):
    comment = f"bad-{uuid.uuid4().hex[:6]}"
    res = cli("silences", "add", "--matcher", "topic=TSLA", "--matcher", matcher, "--comment", comment)
    one_line_error(res, f"bad matcher {matcher!r}", says)
    assert res.code == 2
    assert comment not in [s["comment"] for s in cli("silences", "list", "--json").json()]


def test_missing_or_wrong_token_is_refused_clearly(cli, monkeypatch, tmp_path):
    rid = f"tok-{uuid.uuid4().hex[:6]}"
    f = tmp_path / "route.json"
    f.write_text(json.dumps(route(rid)))

    monkeypatch.delenv("BABELWATCH_API_TOKEN")
    one_line_error(cli("subscriptions", "add", "-f", str(f)), "set BABELWATCH_API_TOKEN")
    one_line_error(cli("silences", "add", "-m", "topic=TSLA"), "set BABELWATCH_API_TOKEN")
    one_line_error(cli("subscriptions", "list", "--json"), "reads need the bearer token", "set BABELWATCH_API_TOKEN")

    monkeypatch.setenv("BABELWATCH_API_TOKEN", "not-the-token")
    res = cli("subscriptions", "add", "-f", str(f))
    one_line_error(res, "unauthorized", "missing or wrong bearer token", "BABELWATCH_API_TOKEN")
    assert res.code == 1
    one_line_error(cli("silences", "expire", "whatever"), "unauthorized")
    assert "not-the-token" not in res.err
    one_line_error(cli("silences", "list"), "unauthorized", "missing or wrong bearer token")  # reads too

    monkeypatch.setenv("BABELWATCH_API_TOKEN", TOKEN)
    assert cli("subscriptions", "get", rid).code == 1  # nothing was created


def test_unreachable_api_is_one_line_and_exit_1(cli):
    dead = f"http://127.0.0.1:{free_port()}"
    for args in (("subscriptions", "list"), ("silences", "add", "-m", "topic=TSLA"), ("silences", "expire", "x")):
        res = cli(*args, api=dead)
        one_line_error(res, f"cannot reach the API at {dead}")
        assert res.code == 1


def test_installed_command_reports_without_traceback():
    """The real entry point, as a user runs it: default --api from BABELWATCH_API_HOST/PORT."""
    port = free_port()
    done = subprocess.run([sys.executable, "-m", "babelwatch", "silences", "list"], cwd=REPO, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "BABELWATCH_API_HOST": "127.0.0.1", "BABELWATCH_API_PORT": str(port),
                               "BABELWATCH_API_TOKEN": TOKEN})  # without one it stops before connecting
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"babelwatch: error: cannot reach the API at http://127.0.0.1:{port} (connection refused or host unknown; "
        "is `babelwatch api` or `babelwatch notify` running? see --api)"]
