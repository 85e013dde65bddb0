"""``babelwatch bench soak``: a long run through the worker, watching memory for leaks.

Streams ``--events`` events (default 1,000,000) through one local stack, worker and notifier,
samples their RSS and fits its growth after the warm-up; goal < 5 % (``--strict``: exit 1 if not).
:class:`RssSampler` and :func:`group_pids` are used by the adversarial test too.
What runs, what is measured: docs/design.md#soak-benchmark
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import mode

from contracts.settings import Settings
from stream import clients

log = logging.getLogger("babelwatch.bench")

MIB = 1 << 20
GOAL_GROWTH_PCT = 5.0
STALL_S = 60.0
COMPONENTS = ("worker", "notifier", "triton")
# alerts during the soak (unless --no-alerts): 5-s windows, and one topic that carries 2 % of the
# events but a third of them for BURST_S of every CYCLE_S: its volume-spike alert fires and resolves
# every cycle, so the alert lifecycle, the outbox and the notifier's consumer work all along
BURST_TOPIC = "SOAK-BURST"
CYCLE_S, BURST_S = 60.0, 10.0
ALERT_ENV = {"BABELWATCH_WINDOW_S": "5", "BABELWATCH_SPIKE_MIN_HISTORY": "3", "BABELWATCH_SPIKE_HISTORY": "5",
             "BABELWATCH_ALERT_KEEP_FIRING_FOR_S": "5", "BABELWATCH_ALERT_STALE_AFTER_S": "60",
             "BABELWATCH_ALERT_SWEEP_INTERVAL_S": "5"}


# --------------------------------------------------------------------------------------- /proc
def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of one process in bytes (empty when it is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith((b"VmRSS:", b"VmHWM:")):
                    key, value = line.split(b":", 1)
                    out[key.decode()] = int(value.split()[0]) * 1024  # kB
    except (OSError, ValueError):
        return {}
    return out


def group_pids(pgid: int | None) -> list[int]:
    """Every live process of a process group (Triton: the server and its backend stubs)."""
    if not pgid:
        return []
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid:
            pids.append(int(name))
    return pids


def rss(pids: Sequence[int]) -> int:
    return sum(proc_status(p).get("VmRSS", 0) for p in pids)


class RssSampler:
    """Samples the summed VmRSS of named process sets every ``interval_s`` in a thread.

    ``sources``: name -> a callable returning that component's pids now (processes come and go:
    Triton's stubs, a restarted worker). Keeps every sample and each component's peak.
    """

    def __init__(self, sources: Mapping[str, Callable[[], Sequence[int]]], interval_s: float = 0.2) -> None:
        self.sources = dict(sources)
        self.interval_s = interval_s
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._peak: dict[str, int] = {k: 0 for k in self.sources}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def start(self) -> "RssSampler":
        self.sample()
        self._thread.start()
        return self

    def sample(self) -> dict[str, int]:
        now = {k: rss(get()) for k, get in self.sources.items()}
        with self._lock:
            self.samples.append((time.monotonic(), now))
            for k, v in now.items():
                self._peak[k] = max(self._peak[k], v)
        return now

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def current(self) -> dict[str, int]:
        return self.sample()

    def peak(self) -> dict[str, int]:
        self.sample()
        with self._lock:
            return dict(self._peak)

    def hwm(self) -> dict[str, int]:
        """Summed VmHWM (each process's own lifetime peak) of the processes alive now."""
        return {k: sum(proc_status(p).get("VmHWM", 0) for p in get()) for k, get in self.sources.items()}

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


# --------------------------------------------------------------------------------------- trend
@dataclass(frozen=True)
class Trend:
    """RSS against events after the warm-up: a least-squares line."""

    points: int
    slope: float  # bytes per event
    start_bytes: float  # the line at the first measured point (end of warm-up)
    end_bytes: float  # the line at the last point
    first_bytes: float  # measured, first point after the warm-up
    last_bytes: float  # measured, last point

    @property
    def growth_pct(self) -> float:
        return (self.end_bytes - self.start_bytes) / self.start_bytes * 100.0 if self.start_bytes > 0 else float("nan")

    @property
    def mib_per_100k(self) -> float:
        return self.slope * 100_000 / MIB


def rss_trend(points: Sequence[tuple[float, float]], warmup_fraction: float = 0.2) -> Trend | None:
    """``points``: (events scored, RSS bytes) in order. Drops those within the first
    ``warmup_fraction`` of the events' range, fits RSS = a + b * events to the rest by least
    squares. None with fewer than 3 points left (or no spread in events)."""
    if not points:
        return None
    x0, x1 = points[0][0], points[-1][0]
    cut = x0 + (x1 - x0) * warmup_fraction
    kept = [(float(x), float(y)) for x, y in points if x >= cut]
    if len(kept) < 3:
        return None
    n = len(kept)
    mx = sum(x for x, _ in kept) / n
    my = sum(y for _, y in kept) / n
    sxx = sum((x - mx) ** 2 for x, _ in kept)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in kept) / sxx
    a = my - slope * mx
    return Trend(n, slope, a + slope * kept[0][0], a + slope * kept[-1][0], kept[0][1], kept[-1][1])


# --------------------------------------------------------------------------------------- run
@dataclass
class SoakSample:
    t: float  # seconds since the stream started
    produced: int
    scored: int
    rss: dict[str, int] = field(default_factory=dict)


class ScoredCounter(mode.Service):
    """Counts the scored and dead-letter records (no parsing: 1M ids would cost this process more
    memory than the worker under test)."""

    def __init__(self, kafka: Settings, scored: str, dead: str, partitions: int, alerts: str | None = None) -> None:
        super().__init__()
        self.kafka, self.scored_topic, self.dead_topic, self.partitions = kafka, scored, dead, partitions
        self.alerts_topic = alerts
        self.scored = 0
        self.dead = 0
        self.alerts = 0
        self.dead_sample: bytes | None = None
        self.last_change = time.monotonic()
        self._consumer = None

    async def on_start(self) -> None:
        topics = {self.scored_topic: self.partitions, self.dead_topic: 1}
        if self.alerts_topic:
            topics[self.alerts_topic] = 1
        self._consumer = await clients.start_reader(self.kafka, topics, fetch_max_wait_ms=100)

    @mode.Service.task
    async def _run(self) -> None:
        while not self.should_stop:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=20_000)
            for tp, msgs in batches.items():
                if tp.topic == self.dead_topic:
                    self.dead += len(msgs)
                    self.dead_sample = self.dead_sample or msgs[0].value
                elif tp.topic == self.alerts_topic:
                    self.alerts += len(msgs)
                else:
                    self.scored += len(msgs)
            if batches:
                self.last_change = time.monotonic()

    def check(self) -> None:
        """Raise what stopped the counting, if anything did."""
        if self.crashed:
            raise RuntimeError("the output counter stopped") from self._crash_reason

    async def on_stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


def _health(url: str | None) -> str:
    if url is None:
        return "-"
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            return str(r.status)
    except OSError as e:
        return type(e).__name__


async def soak_stream(bench, n_events: int, interval_s: float, backlog: int, notifier: bool, alerts: bool = True,
                      out=sys.stdout) -> tuple[list[SoakSample], int]:
    """Start worker (+ notifier), stream ``n_events`` with at most ``backlog`` unscored, sample.
    Returns the samples and the number of alert notifications the worker emitted."""
    from babelwatch.bench.pipeline import BULK, PARTITIONS, make_event
    from babelwatch.localstack.notifier_process import NotifierProcess

    names = bench.topics("soak")
    bench.create_topics(names)
    env = {**bench.worker_env("soak", "cheap", names), **(ALERT_ENV if alerts else {})}
    counter = ScoredCounter(bench.kafka, names["scored"], names["dead"], PARTITIONS, names["alerts"])
    await counter.start()
    worker = bench.new_worker(env, name="worker-soak")
    notify = None
    producer = clients.async_producer(bench.kafka, **BULK)
    samples: list[SoakSample] = []
    try:
        if notifier:
            notify = NotifierProcess(bench.run_dir, env, name="notifier-soak").launch()
            bench.workers.append(notify)  # stopped by run()'s cleanup like the workers
        await asyncio.to_thread(worker.start)
        if notify is not None:
            await asyncio.to_thread(notify.wait_ready)
        triton_pgid = bench.stack.triton.process.pid
        sources = {"worker": lambda: [worker.process.pid],
                   "notifier": (lambda: [notify.process.pid]) if notify else (lambda: []),
                   "triton": lambda: group_pids(triton_pgid)}
        await producer.start()
        templates = bench.templates
        t0 = time.monotonic()
        produced, next_sample = 0, t0
        last_scored, last_t = 0, t0
        out.write(f"{'seconds':>8}{'produced':>10}{'scored':>10}{'ev/s':>8}"
                  + "".join(f"{c + ' MiB':>14}" for c in COMPONENTS) + f"{'alerts':>8}{'api':>6}\n")
        out.flush()
        tpl = itertools.cycle(templates)
        while True:
            counter.check()
            if not worker.alive:
                raise RuntimeError(f"worker exited; log tail:\n{worker.log_tail(40)}")
            if notify is not None and not notify.alive:
                raise RuntimeError(f"notifier exited; log tail:\n{notify.log_tail(40)}")
            if counter.dead:
                raise RuntimeError(f"{counter.dead} dead letters, e.g. {counter.dead_sample[:300]!r}")
            now = time.monotonic()
            if now >= next_sample or counter.scored >= n_events:
                rss_now = {k: rss(get()) for k, get in sources.items()}
                s = SoakSample(now - t0, produced, counter.scored, rss_now)
                samples.append(s)
                rate = (counter.scored - last_scored) / (now - last_t) if now > last_t else 0.0
                last_scored, last_t = counter.scored, now
                out.write(f"{s.t:>8.0f}{produced:>10}{counter.scored:>10}{rate:>8.0f}"
                          + "".join(f"{rss_now[c] / MIB:>14.1f}" for c in COMPONENTS)
                          + f"{counter.alerts:>8}{_health(notify.url if notify else None):>6}\n")
                out.flush()
                next_sample = now + interval_s
                if counter.scored >= n_events:
                    break
            if now - counter.last_change > STALL_S and counter.scored < produced:
                raise RuntimeError(f"stalled at {counter.scored}/{produced} scored for {STALL_S:.0f}s; "
                                   f"worker log:\n{worker.log_tail(40)}")
            room = min(backlog - (produced - counter.scored), n_events - produced)
            if room >= 1000 or (room > 0 and produced + room == n_events):
                chunk = min(room, 1000)
                ts = time.time()
                every = 3 if alerts and (now - t0) % CYCLE_S < BURST_S else 50
                futures = []
                for i in range(chunk):
                    n = produced + i
                    t = next(tpl)
                    if alerts and n % every == 0:
                        t = {**t, "topic": BURST_TOPIC}
                    futures.append(await producer.send(names["events"], make_event(t, f"soak-{n:08d}", ts)))
                await asyncio.gather(*futures)
                produced += chunk
            else:
                await asyncio.sleep(0.05)
        if counter.scored > n_events:
            log.warning("%d scored records for %d events (duplicates)", counter.scored, n_events)
        n_alerts = counter.alerts
    finally:
        await producer.stop()
        await counter.stop()
        await asyncio.to_thread(worker.stop)
        if notify is not None:
            await asyncio.to_thread(notify.stop)
    return samples, n_alerts


def report(samples: list[SoakSample], warmup: float, n_events: int, notifier: bool, wall_s: float,
           n_alerts: int | None = None) -> tuple[str, bool]:
    lines = ["", f"babelwatch bench soak   ({os.cpu_count()} cpus, {n_events} events, model cheap, warm-up = first "
             f"{warmup:.0%} of the events; growth = fitted RSS at the end vs at the end of the warm-up)", ""]
    lines.append(f"{'component':<10}{'first MiB':>11}{'after warm-up':>15}{'last MiB':>10}{'peak MiB':>10}"
                 f"{'MiB/100k ev':>13}{'growth %':>10}")
    ok = True
    for c in COMPONENTS:
        pts = [(s.scored, s.rss.get(c, 0)) for s in samples if s.rss.get(c)]
        if not pts:
            lines.append(f"{c:<10}  (not run)")
            continue
        tr = rss_trend(pts, warmup)
        peak = max(y for _, y in pts)
        if tr is None:
            lines.append(f"{c:<10}{pts[0][1] / MIB:>11.1f}  (too few samples after the warm-up: lower --interval)")
            ok = False
            continue
        lines.append(f"{c:<10}{pts[0][1] / MIB:>11.1f}{tr.first_bytes / MIB:>15.1f}{tr.last_bytes / MIB:>10.1f}"
                     f"{peak / MIB:>10.1f}{tr.mib_per_100k:>13.2f}{tr.growth_pct:>10.2f}")
        ok = ok and tr.growth_pct < GOAL_GROWTH_PCT
    rate = samples[-1].scored / samples[-1].t if samples and samples[-1].t > 0 else float("nan")
    lines += ["", f"{samples[-1].scored if samples else 0} events scored in {samples[-1].t if samples else 0:.0f}s "
              f"({rate:.0f}/s); goal growth < {GOAL_GROWTH_PCT:.0f} % for every component: "
              + ("met" if ok else "NOT met")]
    if n_alerts is not None:
        lines.append(f"alert notifications emitted (fired/resolved; {BURST_TOPIC} bursts, 5-s windows): {n_alerts}")
    lines.append(f"total wall time {wall_s:.0f}s")
    if not notifier:
        lines.append("(notifier not run: --no-notifier)")
    return "\n".join(lines) + "\n", ok


def report_json(samples: list[SoakSample], warmup: float, n_events: int) -> dict:
    """The report's figures as data (``babelwatch bench soak --json``)."""
    components = {}
    for c in COMPONENTS:
        pts = [(s.scored, s.rss.get(c, 0)) for s in samples if s.rss.get(c)]
        tr = rss_trend(pts, warmup) if pts else None
        components[c] = None if not pts else {
            "first_mib": round(pts[0][1] / MIB, 2), "peak_mib": round(max(y for _, y in pts) / MIB, 2),
            "after_warmup_mib": None if tr is None else round(tr.first_bytes / MIB, 2),
            "last_mib": None if tr is None else round(tr.last_bytes / MIB, 2),
            "mib_per_100k_events": None if tr is None else round(tr.mib_per_100k, 3),
            "growth_pct": None if tr is None else round(tr.growth_pct, 3)}
    growths = [v["growth_pct"] for v in components.values() if v is not None]
    return {"events": n_events, "scored": samples[-1].scored if samples else 0,
            "seconds": round(samples[-1].t, 1) if samples else 0, "warmup": warmup, "goal_growth_pct": GOAL_GROWTH_PCT,
            "met": bool(growths) and all(g is not None and g < GOAL_GROWTH_PCT for g in growths),
            "components": components}


def run(settings, n_events: int = 1_000_000, interval_s: float = 10.0, warmup: float = 0.2, backlog: int = 20_000,
        notifier: bool = True, strict: bool = False, alerts: bool = True, as_json: bool = False) -> int:
    from babelwatch.bench.pipeline import run_on_local_stack

    if n_events < 1000 or not 0 <= warmup < 1 or interval_s <= 0 or backlog < 1000:
        log.error("need --events >= 1000, 0 <= --warmup < 1, --interval > 0, --backlog >= 1000")
        return 2
    t_all = time.monotonic()
    rc, got, run_dir = run_on_local_stack(
        settings, "soak", ("cheap",), lambda bench: soak_stream(bench, n_events, interval_s, backlog, notifier, alerts,
                                                        out=sys.stderr if as_json else sys.stdout))
    if rc:
        return rc
    samples, n_alerts = got
    if as_json:
        data = {**report_json(samples, warmup, n_events), "alerts": n_alerts if alerts else None,
                "wall_s": round(time.monotonic() - t_all, 1), "logs": str(run_dir)}
        sys.stdout.write(json.dumps(data) + "\n")
        return 1 if strict and not data["met"] else 0
    text, ok = report(samples, warmup, n_events, notifier, time.monotonic() - t_all, n_alerts if alerts else None)
    sys.stdout.write(text + f"logs in {run_dir}\n")
    sys.stdout.flush()
    return 1 if strict and not ok else 0
