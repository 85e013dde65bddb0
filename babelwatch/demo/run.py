"""``babelwatch up`` and ``babelwatch demo``: the whole system on this machine, started for real.

up:   broker + Redis + Triton + one worker + the notifier with the HTTP API, until Ctrl-C.
demo: the same, then the shipped multilingual sample stream is replayed live (event time = send
      time) with its scripted burst, while a table shows each topic's current window per language
      and the alerts (CloudEvents from the alerts topic) as they fire and resolve. Exit code 0 when
      every valid event was scored and an alert fired.
"""
from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from babelwatch.localstack.notifier_process import NotifierProcess
from babelwatch.localstack.stack import LocalStack
from babelwatch.localstack.triton import SERVED_MODELS
from babelwatch.localstack.worker_process import WorkerProcess
from contracts.keys import RedisKeys
from contracts.settings import Settings
from workers.alerting.story_notes import render_stories
from stream import clients
from babelwatch.cli.config import redact_value

log = logging.getLogger("babelwatch.demo")


def ensure_model() -> None:
    from fusion_model.build import build_and_link as build

    build(force=False)


def stack_for(settings: Settings, run_dir: Path) -> LocalStack:
    from stream.topics import topic_partitions

    return LocalStack(
        redis_url=settings.redis_url,
        triton_repo=settings.triton_repo,
        run_dir=run_dir,
        topics=topic_partitions(),
        triton_model_config_name=settings.triton_config or None,
        triton_load_models=SERVED_MODELS,
    )


def worker_env(stack: LocalStack, **overrides: object) -> dict[str, str]:
    env = {
        "BABELWATCH_BROKER_URL": f"kafka://{stack.bootstrap}",
        "BABELWATCH_REDIS_URL": stack.redis_url,
        "BABELWATCH_TRITON_URL": stack.triton_grpc_url or "",
    }
    env.update({f"BABELWATCH_{k.upper()}": str(v) for k, v in overrides.items()})
    return env


def _run_dir(settings: Settings, name: str) -> Path:
    path = Path(settings.run_dir) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def local_api_tokens(settings: Settings, run_dir: Path) -> tuple[dict[str, str], Path | None]:
    """The API refuses every /v1 request without a token. When none is configured, the local stack
    makes one: a tokens file (0600) in its run directory, whose path is printed, never the token."""
    if settings.api_token is not None or settings.api_tokens_file is not None:
        return {}, None
    path = run_dir / "api-tokens"
    path.touch(mode=0o600)
    path.write_text(f"local write {secrets.token_urlsafe(32)}\n", encoding="utf-8")
    return {"BABELWATCH_API_TOKENS_FILE": str(path)}, path


def _token_hint(path: Path | None) -> str:
    if path is None:
        return ""
    return f"  export BABELWATCH_API_TOKEN=$(awk '{{print $3}}' {path})   # the API's token\n"


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def up(settings: Settings, with_worker: bool = True, api_port: int | None = None) -> int:
    ensure_model()
    run_dir = _run_dir(settings, "up")
    tokens_env, tokens_file = local_api_tokens(settings, run_dir)
    with stack_for(settings, run_dir) as stack:
        notifier = NotifierProcess(run_dir, {**worker_env(stack), **tokens_env},
                                   port=api_port or settings.api_port).launch()
        worker = None
        try:
            worker = WorkerProcess(run_dir, worker_env(stack)).start() if with_worker else None
            notifier.wait_ready()
            print(
                f"\nbabelwatch is up. Dashboard: {notifier.url}/ (it asks for the API token once)\n"
                "In another shell:\n"
                f"  export BABELWATCH_BROKER_URL=kafka://{stack.bootstrap}\n"
                f"  export BABELWATCH_REDIS_URL={redact_value(stack.redis_url)}\n"
                f"  export BABELWATCH_TRITON_URL={stack.triton_grpc_url}\n"
                "  babelwatch produce            # the sample stream\n"
                "  babelwatch tail alerts\n"
                "  babelwatch status             # lag, groups, dead letters, alerts, health\n"
                + _token_hint(tokens_file) +
                f'  curl -N -H "Authorization: Bearer $BABELWATCH_API_TOKEN" {notifier.url}/v1/alerts/stream'
                f"     # live alerts (API docs: {notifier.url}/docs)\n"
                f"metrics: worker http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics, "
                f"notifier {notifier.url}/metrics, triton http://127.0.0.1:{stack.triton.metrics_port}/metrics"
                f" (README: Observability)\n"
                f"logs: {run_dir}\nCtrl-C stops everything.",
                flush=True,
            )
            signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops everything like Ctrl-C
            while (worker is None or worker.alive) and notifier.alive:
                time.sleep(0.5)
            gone = worker if worker is not None and not worker.alive else notifier
            log.error("%s exited; log tail:\n%s", gone.process.name, gone.log_tail())
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            if worker is not None:
                worker.stop()
            notifier.stop()


@dataclass
class Outputs:
    """What the worker produced, collected by a background consumer."""

    scored: int = 0
    dead: Counter = field(default_factory=Counter)
    alerts: list[dict] = field(default_factory=list)  # CloudEvents from the alerts topic
    lock: threading.Lock = field(default_factory=threading.Lock)


def _collect(settings: Settings, out: Outputs, stop: threading.Event) -> None:
    consumer = clients.consumer(settings, settings.topic_scored, settings.topic_deadletter, settings.topic_alerts)
    try:
        while not stop.is_set():
            for tp, msgs in consumer.poll(timeout_ms=300).items():
                with out.lock:
                    if tp.topic == settings.topic_scored:
                        out.scored += len(msgs)
                    elif tp.topic == settings.topic_deadletter:
                        out.dead.update(orjson.loads(m.value)["reason"] for m in msgs)
                    else:
                        out.alerts.extend(orjson.loads(m.value) for m in msgs)
    finally:
        consumer.close()


def _snapshot(r, settings: Settings, prefix: str, window_s: int) -> list[dict]:
    """Current and previous window of every topic, per language, in one pipelined read."""
    from workers.windows import window_start

    keys = RedisKeys(prefix)
    topics = sorted(m.decode() for m in r.smembers(keys.topics))
    langs = {t: sorted(m.decode() for m in r.smembers(keys.langs(t))) for t in topics}
    now = window_start(time.time(), window_s)
    pipe = r.pipeline(transaction=False)
    plan = []
    for t in topics:
        for lang in langs[t]:
            for start in (now, now - window_s):
                pipe.hgetall(keys.window(str(window_s), t, lang, start))  # the primary, tumbling shape
                plan.append((t, lang, start == now))
    rows: dict[str, dict] = {t: {"topic": t, "langs": {}, "now": {}, "prev": {}} for t in topics}
    for (t, lang, current), h in zip(plan, pipe.execute()):
        h = {k.decode(): float(v) for k, v in h.items()}
        if lang == "*":
            rows[t]["now" if current else "prev"] = h
        elif current and h:
            rows[t]["langs"][lang] = int(h.get("count", 0))
    return list(rows.values())


def alert_state(event: dict) -> str:
    """``firing`` or ``resolved``, from an alerts-topic CloudEvent's type (io.babelwatch.alert.<state>)."""
    return str(event.get("type", "")).rsplit(".", 1)[-1]


def _render(rows: list[dict], outputs: Outputs, sent: int, window_s: int):
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"babelwatch — current {window_s}s window per topic (sent {sent}, scored {outputs.scored})")
    for col in ("topic", "events", "prev", "sentiment", "neg/neu/pos", "languages (current window)"):
        table.add_column(col)
    for row in rows:
        now, prev = row["now"], row["prev"]
        n = int(now.get("count", 0))
        mean = now.get("sentiment_sum", 0.0) / n if n else 0.0
        bar = ("[red]" if mean < -0.1 else "[green]" if mean > 0.1 else "[yellow]") + f"{mean:+.2f}"
        labels = "/".join(str(int(now.get(k, 0))) for k in ("negative", "neutral", "positive"))
        langs = " ".join(f"{k}:{v}" for k, v in sorted(row["langs"].items(), key=lambda kv: -kv[1]))
        table.add_row(row["topic"], str(n), str(int(prev.get("count", 0))), bar, labels, langs)
    alerts = Table(title="alerts (newest last)")
    for col in ("state", "severity", "detector", escape("topic [language] stage")):
        alerts.add_column(col, no_wrap=True)
    alerts.add_column("summary")
    for e in outputs.alerts[-6:]:
        state, data = alert_state(e), e.get("data", {})
        lab = data.get("labels", {})
        sev = lab.get("severity", "")
        alerts.add_row(
            ("[green]" if state == "resolved" else "[bold red]") + state,
            ("[bold red]" if sev == "critical" else "[yellow]") + sev,
            escape(lab.get("detector", "")),
            escape(f"{lab.get('topic', '')} [{lab.get('language', '')}] {lab.get('stage', '')}"),
            escape("\n".join(filter(None, (str(data.get("annotations", {}).get("summary", "")),
                                            render_stories(data.get("annotations", {}).get("stories")))))),
        )
    dead = ", ".join(f"{k}={v}" for k, v in outputs.dead.items()) or "none"
    return Group(table, alerts, f"dead letters: {dead}")


ALERT_GRACE_S = 15.0


def demo(settings: Settings, file: Path, rate: float = 8.0, window_s: int = 5, timeout_s: float = 180.0) -> int:
    import redis
    from rich.console import Console
    from rich.live import Live

    from babelwatch.replay import replay

    console = Console()
    ensure_model()
    prefix = f"bwdemo-{int(time.time())}"
    lines = [ln for ln in file.read_bytes().splitlines() if ln.strip()]
    valid_ids = set()
    for ln in lines:
        try:
            obj = orjson.loads(ln)
            if isinstance(obj, dict) and not str(obj.get("id", "")).startswith("bad-"):
                valid_ids.add(obj.get("id"))
        except orjson.JSONDecodeError:
            pass
    run_dir = _run_dir(settings, "demo")
    overrides = dict(window_s=window_s, redis_prefix=prefix, spike_history=5, spike_min_history=3)
    tokens_env, tokens_file = local_api_tokens(settings, run_dir)
    with stack_for(settings, run_dir) as stack:
        notifier = NotifierProcess(run_dir, {**worker_env(stack, **overrides), **tokens_env}).launch()
        try:
            worker = WorkerProcess(run_dir, worker_env(stack, **overrides)).start()
            notifier.wait_ready()
        except BaseException:
            notifier.stop()
            raise
        console.print(f"Dashboard: {notifier.url}/  API and live alerts: {notifier.url}/v1/alerts/stream "
                      f"(docs {notifier.url}/docs)"
                      + (f"; token: the third field of {tokens_file}" if tokens_file else ""), soft_wrap=True)
        local = clients.for_broker(settings, stack.bootstrap)
        outputs, stop = Outputs(), threading.Event()
        collector = threading.Thread(target=_collect, args=(local, outputs, stop), daemon=True)
        collector.start()
        sent = {"n": 0}

        def produce() -> None:
            replay(file, local, settings.topic_events, rate=rate, progress_every=0,
                   on_sent=lambda n: sent.__setitem__("n", n))

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        r = redis.Redis.from_url(stack.redis_url)
        deadline = time.monotonic() + timeout_s
        interactive = console.is_terminal
        last_print = 0.0
        settled_at: float | None = None
        try:
            with Live(console=console, refresh_per_second=2, transient=False) if interactive else _NoLive() as live:
                while time.monotonic() < deadline:
                    view = _render(_snapshot(r, settings, prefix, window_s), outputs, sent["n"] or 0, window_s)
                    if interactive:
                        live.update(view)
                    elif time.monotonic() - last_print > 5:
                        console.print(view)
                        last_print = time.monotonic()
                    scored_all = not producer.is_alive() and outputs.scored >= len(valid_ids)
                    if scored_all and settled_at is None:
                        settled_at = time.monotonic()
                    # alerts leave through the Redis outbox, a moment after the batch that raised them
                    fired = any(alert_state(e) == "firing" for e in outputs.alerts)
                    if scored_all and (fired or time.monotonic() - settled_at > ALERT_GRACE_S):
                        break
                    if not worker.alive:
                        break
                    time.sleep(0.5)
            console.print(_render(_snapshot(r, settings, prefix, window_s), outputs, sent["n"], window_s))
        finally:
            stop.set()
            worker.stop()
            notifier.stop()
            collector.join(5)
            r.close()
    states = Counter(alert_state(e) for e in outputs.alerts)
    ok = outputs.scored >= len(valid_ids) and states["firing"] > 0
    console.print(
        f"\nsummary: sent {sent['n']} lines, scored {outputs.scored} of {len(valid_ids)} valid events, "
        f"{sum(outputs.dead.values())} dead letters, {states['firing']} alert(s) fired, "
        f"{states['resolved']} resolved. logs: {run_dir}"
    )
    return 0 if ok else 1


class _NoLive:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
