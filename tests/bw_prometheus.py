"""Real Prometheus, Alertmanager and Redis exporter (Debian's packages) as child processes on free
ports, plus readers of deploy/'s dashboard and rules: for tests of the observability stack."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from babelwatch.localstack.process import ManagedProcess, free_port, wait_until
from bw_paths import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "babelwatch.json"
RULES = REPO / "deploy" / "prometheus" / "rules.yml"
# the series a query reads: ours, Triton's, the Redis exporter's, the process collector's, up
_NAMES = re.compile(r"\b(babelwatch_\w+|nv_\w+|redis_\w+|process_\w+|up)\b(?!\s*\()")


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} missing: `make setup` installs Debian's prometheus and prometheus-alertmanager"
    return path


def get_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


class Alertmanager:
    def __init__(self, run_dir: Path) -> None:
        self.port = free_port()
        cfg = run_dir / "alertmanager.yml"
        cfg.write_text("route:\n  receiver: sink\n  group_wait: 0s\nreceivers:\n  - name: sink\n")
        self.process = ManagedProcess("alertmanager", [
            tool("prometheus-alertmanager"), f"--config.file={cfg}", f"--storage.path={run_dir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="], run_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Alertmanager":
        self.process.start()
        wait_until(lambda: answers(self.url + "/-/ready"), 30, 0.2, "alertmanager ready", self.process)
        return self

    def alerts(self) -> list[dict]:
        """What amtool lists (the real CLI against the real server)."""
        out = subprocess.run([tool("amtool"), f"--alertmanager.url={self.url}", "alert", "query", "-o", "json"],
                             capture_output=True, timeout=20, check=True)
        return json.loads(out.stdout or b"[]")

    def stop(self) -> None:
        self.process.stop()


class RedisExporter:
    def __init__(self, run_dir: Path, redis_url: str) -> None:
        self.port = free_port()
        self.process = ManagedProcess("redis-exporter", [
            tool("prometheus-redis-exporter"), "-redis.addr", redis_url,
            "-web.listen-address", f"127.0.0.1:{self.port}"], run_dir)

    def start(self) -> "RedisExporter":
        self.process.start()
        wait_until(lambda: answers(f"http://127.0.0.1:{self.port}/metrics"), 30, 0.2, "redis exporter",
                   self.process)
        return self

    def stop(self) -> None:
        self.process.stop()


class Prometheus:
    """Scrapes ``targets`` ({job: [host:port]}) every second, evaluates ``rules`` every second and
    sends alerts to ``alertmanager``."""

    def __init__(self, run_dir: Path, targets: dict[str, list[str]], rules: Path | None = None,
                 alertmanager: str | None = None) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": t}]} for job, t in targets.items()],
        }
        if rules is not None:
            config["rule_files"] = [str(rules)]
        if alertmanager is not None:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        cfg = run_dir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(config))
        subprocess.run([tool("promtool"), "check", "config", str(cfg)], check=True, capture_output=True, timeout=30)
        self.process = ManagedProcess("prometheus", [
            tool("prometheus"), f"--config.file={cfg}", f"--storage.tsdb.path={run_dir / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}"], run_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Prometheus":
        self.process.start()
        wait_until(lambda: answers(self.url + "/-/ready"), 60, 0.2, "prometheus ready", self.process)
        return self

    def query(self, expr: str) -> list:
        """The instant query's result (raises with Prometheus' error on a bad query)."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            body = get_json(url)
        except urllib.error.HTTPError as e:
            raise AssertionError(f"query failed: {expr}: {e.read().decode()}") from None
        assert body["status"] == "success", body
        return body["data"]["result"]

    def targets_up(self) -> dict[str, str]:
        data = get_json(self.url + "/api/v1/targets")["data"]["activeTargets"]
        return {f"{t['labels']['job']}/{t['labels']['instance']}": t["health"] for t in data}

    def alerts(self) -> list[dict]:
        return get_json(self.url + "/api/v1/alerts")["data"]["alerts"]

    def stop(self) -> None:
        self.process.stop()


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, expression) of every target of every panel."""
    out = []
    for panel in json.loads(path.read_text())["panels"]:
        for t in panel.get("targets", []):
            out.append((panel["title"], t["expr"]))
    return out


def rule_exprs(path: Path = RULES) -> list[tuple[str, str]]:
    return [(r.get("alert") or r.get("record"), r["expr"])
            for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def rules_without_for(path: Path, dest: Path) -> Path:
    """The rules file with every ``for:`` at 0s: a test cannot wait minutes (expressions unchanged)."""
    doc = yaml.safe_load(path.read_text())
    for g in doc["groups"]:
        for r in g["rules"]:
            if "for" in r:
                r["for"] = "0s"
    dest.write_text(yaml.safe_dump(doc))
    return dest


def series_names(expr: str) -> set[str]:
    return set(_NAMES.findall(expr))
