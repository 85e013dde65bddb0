"""The HTTP API fuzzed from its own OpenAPI document (Schemathesis), for a bounded time.

A real `babelwatch api` process (real socket, the machine's Redis under its own key prefix) with a
write-scope token, so generated requests reach every handler. Schemathesis runs its coverage
(boundary and invalid values per parameter), fuzzing and stateful (create, then read, replace,
delete what was created) phases, deterministically (the same cases every run) and bounded by a
fixed number of examples per operation.

Checks: every built-in one (no 5xx; status codes, content types, headers and bodies as documented;
invalid data refused; auth not ignored; 405 with a correct Allow; ...) except
``positive_data_acceptance``: it expects every schema-valid request to succeed, and some rules
cannot be written in JSON Schema -- ``ends_at`` after ``starts_at``, a regex RE2 compiles, a URL
whose host is not private (the SSRF guard), an id equal to the path's. Those requests rightly get a
documented 422, which the other checks still hold to the documented shape.

``BABELWATCH_FUZZ_EXAMPLES`` raises the examples per operation for a longer local run.
"""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

import pytest
from bw_api import WRITE_TOKEN, api_server

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("BABELWATCH_FUZZ_EXAMPLES", "200"))


def test_api_fuzzed_from_its_openapi_document(tmp_path):
    with api_server(tmp_path) as srv:
        report, har = tmp_path / "report.json", tmp_path / "requests.har"
        cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{srv.base}/openapi.json",
               "--header", f"Authorization: Bearer {WRITE_TOKEN}",
               "--checks", "all", "--exclude-checks", "positive_data_acceptance",
               "--max-examples", str(EXAMPLES), "--generation-deterministic", "--workers", "1",
               "--request-timeout", "10", "--no-color", "--report", "json,har",
               "--report-json-path", str(report), "--report-har-path", str(har)]
        done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=540)
        server_log = srv.log_text()
    summary = json.loads(report.read_text())
    entries = json.loads(har.read_text())["log"]["entries"]
    statuses = collections.Counter(e["response"]["status"] for e in entries)
    created = sum(1 for e in entries if e["request"]["method"] == "POST" and e["response"]["status"] == 201)
    print(f"\nfuzz: {summary['test_cases']['generated']} cases, {len(entries)} requests in "
          f"{summary['running_time']:.0f} s, statuses {dict(sorted(statuses.items()))}, "
          f"{summary['test_cases']['with_failures']} with failures")
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    assert summary["complete"] and summary["failures"] == [] and summary["errors"] == []
    assert summary["operations"]["tested"] == summary["operations"]["total"] >= 14
    assert not [s for s in statuses if s >= 500]  # 0 server errors
    assert len(entries) >= 1000 and created > 0  # it did reach the handlers, writes included
    assert "Traceback" not in server_log and "Exception in ASGI" not in server_log
    assert WRITE_TOKEN not in server_log
