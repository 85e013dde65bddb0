"""``babelwatch bench pipeline``: the pipeline's throughput against a raw Kafka loop on the same broker.

One run starts ONE local stack (a fresh Tansu broker, the machine's Redis with a unique key prefix,
one Triton serving ``triton_repo/models``) and measures, each phase on its own topics:

  (a) raw      an aiokafka consume -> json parse -> batched send -> wait-for-delivery loop (the
               ceiling any Python consumer on this broker can reach; the baseline);
  (b) cheap    the real worker (``python -m babelwatch worker``) with the trivially cheap Triton
               model: everything but the model is measured; events that carry ``lang``;
  (b-)         the same with ``lang`` removed from every event (language identification is work);
  (b2)         (b) with two worker processes in one consumer group;
  (c) fusion   the same with the real skeleton model, on fewer events since it is slower;
  (d) latency  a short paced run of (b)'s setup (events with ``lang``) at ~50% of (b)'s throughput: event ``ts`` = send
               time, latency = time this process receives the scored record - ``ts`` (an upper
               bound of produce -> window update: windows are written before the record is sent).

Input events are produced BEFORE each consumer starts, so the consumer drains a backlog and its
throughput, not the producer's, is measured. Throughput = events / (time of the last output -
time the consumer started processing); for the worker phases the clock starts when the worker has
joined its consumer group (``WorkerProcess.start`` returned). CPU seconds of the worker, broker,
Triton (server + backend stubs), Redis and this process are read from /proc around each phase.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable, Sequence, TypeVar

import orjson

from babelwatch.cli.progress import counter
from contracts.settings import Settings
from stream import clients
from workers.alerting.tasks import cancel

T = TypeVar("T")
log = logging.getLogger("babelwatch.bench")

from fusion_model.corpora import SAMPLE_EVENTS as SAMPLE
PARTITIONS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")
STALL_S = 60.0  # no new output for this long: the phase failed
# the bench's producers: aiokafka's default acks=1 (what its figures were measured with), big
# batches for the pre-produced backlogs
BULK = {"acks": 1, "max_batch_size": 256 * 1024}


# --------------------------------------------------------------------------------------- events
def load_templates(path: Path = SAMPLE) -> list[dict]:
    """The sample file's lines that the worker's own validator accepts (stamped with a ts)."""
    from babelwatch.replay import json_lines
    from contracts.schema import Event, Limits
    from workers.validate import EventValidator

    validator = EventValidator(Limits())
    templates, skipped = [], 0
    now = time.time()
    for _, obj in json_lines(path):
        if obj is None:
            skipped += 1
            continue
        obj["ts"] = now
        if isinstance(validator.validate(orjson.dumps(obj)), Event):
            templates.append(obj)
        else:
            skipped += 1
    if not templates:
        raise RuntimeError(f"no valid events in {path}")
    log.info("event templates: %d valid lines of %s (%d invalid skipped)", len(templates), path.name, skipped)
    return templates


def make_event(template: dict, event_id: str, ts: float) -> bytes:
    ev = dict(template)
    ev["id"] = event_id
    ev["ts"] = ts
    return orjson.dumps(ev)


def make_events(templates: Sequence[dict], n: int, tag: str) -> tuple[list[bytes], set[str]]:
    now = time.time()
    payloads, ids = [], set()
    for i, tpl in zip(range(n), itertools.cycle(templates)):
        event_id = f"{tag}-{i:07d}"
        payloads.append(make_event(tpl, event_id, now))
        ids.add(event_id)
    return payloads, ids


# ------------------------------------------------------------------------------------------ cpu
def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode(errors="replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    return data[data.rindex(")") + 2 :].split()


def proc_cpu(pid: int | None) -> float:
    """utime + stime of one process (all its threads), in seconds; 0 when it is gone."""
    f = _stat_fields(pid) if pid else None
    return (int(f[11]) + int(f[12])) / CLK_TCK if f else 0.0


def group_cpu(pgid: int | None) -> float:
    """utime + stime of every live process in a process group (Triton server + its stubs)."""
    if not pgid:
        return 0.0
    total = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        if f and int(f[2]) == pgid:
            total += int(f[11]) + int(f[12])
    return total / CLK_TCK


def find_pid(comm: str) -> int | None:
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if Path(f"/proc/{name}/comm").read_text().strip() == comm:
                    return int(name)
            except OSError:
                continue
    return None


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


class CpuMeter:
    """CPU seconds per component between two snapshots."""

    def __init__(self, stack, redis_pid: int | None) -> None:
        self.stack = stack
        self.redis_pid = redis_pid

    def snapshot(self, worker_pid: int | Sequence[int] | None = None) -> dict[str, float]:
        triton = self.stack.triton.process.pid if self.stack.triton and self.stack.triton.process else None
        pids = [worker_pid] if isinstance(worker_pid, int) else list(worker_pid or ())
        return {
            "worker": sum(proc_cpu(p) for p in pids),
            "broker": proc_cpu(self.stack.broker.process.pid),
            "triton": group_cpu(triton),
            "redis": proc_cpu(self.redis_pid),
            "bench": self_cpu(),
        }

    @staticmethod
    def diff(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: b[k] - a[k] for k in a}


# -------------------------------------------------------------------------------------- results
@dataclass
class PhaseResult:
    name: str
    events: int
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * len(xs) + 0.5) - 1))]


@dataclass
class LatencyResult:
    events: int
    rate: float
    latencies_ms: list[float]  # in send order
    worker_ms: list[float]  # the part up to the worker's scored_at, in send order

    def pct(self, q: float, values: Sequence[float] | None = None) -> float:
        return percentile(self.latencies_ms if values is None else values, q)


# ---------------------------------------------------------------------------------------- kafka
async def produce_all(kafka: Settings, topic: str, payloads: Sequence[bytes]) -> float:
    """Send everything and wait for delivery; returns seconds taken."""
    producer = clients.async_producer(kafka, **BULK)
    await producer.start()
    t0 = time.monotonic()
    try:
        futures = [await producer.send(topic, p) for p in payloads]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    took = time.monotonic() - t0
    log.info("pre-produced %d events to %s in %.2fs (%.0f/s)", len(payloads), topic, took, len(payloads) / took)
    return took


async def raw_loop(kafka: Settings, src: str, dst: str, n: int, group: str) -> tuple[float, float, float]:
    """Phase (a): consume n events, parse, re-encode, send in batches, wait for delivery, commit.

    Returns (t_start, t_last_delivered, seconds) on the monotonic clock; t_start is when the
    consumer group gave this consumer its partitions.
    """
    started: dict[str, float] = {}

    async def assigned(_partitions) -> None:
        started.setdefault("t", time.monotonic())

    # fetch sizes left at aiokafka's defaults: 4 MiB per partition (faust's) measured ~30% slower
    # here, as one huge fetch leaves nothing to overlap with the sends
    consumer = clients.async_consumer(kafka, group=group)
    producer = clients.async_producer(kafka, **BULK)
    await producer.start()
    await consumer.start()
    try:
        consumer.subscribe([src], listener=clients.Rebalance(on_assigned=assigned))
        done, last = 0, time.monotonic()
        while done < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            futures = []
            for msgs in batches.values():
                for m in msgs:
                    ev = orjson.loads(m.value)
                    out = {"id": ev["id"], "topic": ev["topic"], "ts": ev["ts"], "processed_at": time.time()}
                    futures.append(await producer.send(dst, orjson.dumps(out), key=ev["topic"].encode()))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
                done += len(futures)
                last = time.monotonic()
            elif time.monotonic() - last > STALL_S:
                raise RuntimeError(f"raw loop stalled at {done}/{n} events")
        t_end = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
    t0 = started.get("t", t_end)
    return t0, t_end, t_end - t0


class OutputWatcher:
    """Reads a worker's scored and dead-letter topics from the beginning while a phase runs.

    Remembers every scored id (duplicates counted apart), when the first and the last scored
    record were received, and per id receive-time - ``ts`` and ``scored_at`` - ``ts`` (latency).
    """

    def __init__(self, kafka: Settings, scored: str, dead: str) -> None:
        self.kafka, self.scored, self.dead = kafka, scored, dead
        self.seen: set[str] = set()
        self.latency_ms: dict[str, float] = {}
        self.worker_ms: dict[str, float] = {}  # scored_at - ts: event time to the worker's scoring
        self.duplicates = 0
        self.dead_count = 0
        self.dead_samples: list[bytes] = []
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.scored_at: list[float] = []
        self._consumer = None
        self._task: asyncio.Task | None = None
        self._progress = asyncio.Event()

    async def start(self) -> "OutputWatcher":
        self._consumer = await clients.start_reader(
            self.kafka, {self.scored: PARTITIONS, self.dead: 1},
            fetch_max_wait_ms=20,  # bounds the receive-time error
        )
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=10_000)
            now_mono, now_wall = time.monotonic(), time.time()
            for tp, msgs in batches.items():
                for m in msgs:
                    if tp.topic == self.dead:
                        self.dead_count += 1
                        if len(self.dead_samples) < 3:
                            self.dead_samples.append(m.value)
                        continue
                    rec = orjson.loads(m.value)
                    rid = rec.get("id")
                    if rid in self.seen:
                        self.duplicates += 1
                        continue
                    self.seen.add(rid)
                    self.latency_ms[rid] = (now_wall - float(rec["ts"])) * 1000.0
                    self.worker_ms[rid] = (float(rec["scored_at"]) - float(rec["ts"])) * 1000.0
                    self.scored_at.append(float(rec["scored_at"]))
                    if self.first_at is None:
                        self.first_at = now_mono
                    self.last_at = now_mono
            if batches:
                self._progress.set()

    async def wait_for(self, ids: set[str], worker, what: str) -> None:
        """Until every id in ``ids`` was scored; fails on a dead letter, a dead worker or a stall."""
        last_n, last_change = -1, time.monotonic()
        next_log = time.monotonic() + 5
        while True:
            n = len(ids & self.seen)
            if n == len(ids):
                return
            if self.dead_count:
                raise RuntimeError(f"{what}: {self.dead_count} dead letters, e.g. {self.dead_samples[0][:300]!r}")
            if worker is not None and not worker.alive:
                raise RuntimeError(f"{what}: worker exited; log tail:\n{worker.log_tail(40)}")
            if self._task is not None and self._task.done():
                self._task.result()  # re-raise the watcher's error
            now = time.monotonic()
            if n != last_n:
                last_n, last_change = n, now
            elif now - last_change > STALL_S:
                tail = worker.log_tail(40) if worker is not None else ""
                raise RuntimeError(f"{what}: stalled at {n}/{len(ids)} scored for {STALL_S:.0f}s; worker log:\n{tail}")
            if now >= next_log:
                log.info("%s: %d/%d scored", what, n, len(ids))
                next_log = now + 5
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), 0.5)
            except asyncio.TimeoutError:
                pass

    async def stop(self) -> None:
        with contextlib.suppress(Exception):  # a consumer that failed already said so in check()
            await cancel(self._task)
        if self._consumer is not None:
            await self._consumer.stop()


# --------------------------------------------------------------------------------------- phases
@dataclass
class Bench:
    settings: Settings
    stack: object
    run_dir: Path
    templates: list[dict]
    prefix: str
    cpu: CpuMeter
    workers: list = field(default_factory=list)  # every worker started, stopped again by run()

    @property
    def kafka(self) -> Settings:
        """The settings the bench's own Kafka clients use: pointed at the stack's broker."""
        return clients.for_broker(self.settings, self.stack.bootstrap)

    def new_worker(self, env: dict[str, str], name: str):
        from babelwatch.localstack.worker_process import WorkerProcess

        worker = WorkerProcess(self.run_dir, env, name=name)
        self.workers.append(worker)
        return worker

    def topics(self, phase: str) -> dict[str, str]:
        return {k: f"bench.{phase}.{k}" for k in ("events", "scored", "alerts", "dead")}

    def create_topics(self, names: dict[str, str]) -> None:
        self.stack.broker.create_topics(
            {names["events"]: PARTITIONS, names["scored"]: PARTITIONS, names["alerts"]: 1, names["dead"]: 1}
        )

    def other_topics_env(self, phase: str) -> dict[str, str]:
        mine = {"topic_events", "topic_scored", "topic_alerts", "topic_deadletter"}
        env = {}
        for name, value in vars(self.settings).items():
            if name.startswith("topic_") and name not in mine and isinstance(value, str):
                env[f"BABELWATCH_{name.upper()}"] = f"bench.{phase}.{name[len('topic_'):].replace('_', '.')}"
        return env

    def worker_env(self, phase: str, model: str, names: dict[str, str]) -> dict[str, str]:
        s = self.settings
        return {
            "BABELWATCH_APP_ID": f"bench-{phase}-{os.getpid()}",
            "BABELWATCH_BROKER_URL": "kafka://" + self.stack.bootstrap,
            "BABELWATCH_REDIS_URL": self.stack.redis_url,
            "BABELWATCH_REDIS_PREFIX": f"{self.prefix}:{phase}",
            "BABELWATCH_TRITON_URL": self.stack.triton_grpc_url,
            "BABELWATCH_TRITON_MODEL": model,
            "BABELWATCH_TOPIC_EVENTS": names["events"],
            "BABELWATCH_TOPIC_SCORED": names["scored"],
            "BABELWATCH_TOPIC_ALERTS": names["alerts"],
            "BABELWATCH_TOPIC_DEADLETTER": names["dead"],
            "BABELWATCH_TOPIC_PARTITIONS": str(PARTITIONS),
            # every other topic setting too (late, closed windows, ...): phases share no topic, or a
            # later phase's worker would also consume what an earlier phase left in an internal one
            **self.other_topics_env(phase),
            # explicit, so a BABELWATCH_BATCH_* set for the bench reaches the worker and the report
            "BABELWATCH_BATCH_SIZE": str(s.batch_size),
            "BABELWATCH_BATCH_WAIT_S": str(s.batch_wait_s),
        }

    async def raw(self, n: int, reps: int = 5) -> PhaseResult:
        """Phase (a), ``reps`` times over the same input (a fresh consumer group each); the median run counts.

        One pass over 20k events takes well under a second, so a single pass is noisy.
        """
        log.info("phase (a) raw aiokafka loop: %d events, %d runs", n, reps)
        src, dst = "bench.raw.in", "bench.raw.out"
        self.stack.broker.create_topics({src: PARTITIONS, dst: PARTITIONS})
        payloads, _ = make_events(self.templates, n, "raw")
        await produce_all(self.kafka, src, payloads)
        runs = []
        for rep in range(reps):
            c0 = self.cpu.snapshot()
            _, _, took = await raw_loop(self.kafka, src, dst, n, group=f"bench-raw-{os.getpid()}-{rep}")
            runs.append((took, CpuMeter.diff(c0, self.cpu.snapshot())))
            log.info("phase (a) run %d: %d events in %.2fs = %.0f events/s", rep + 1, n, took, n / took)
        runs.sort(key=lambda r: r[0])
        took, cpu = runs[len(runs) // 2]
        note = "median of runs at " + ", ".join(f"{n / t:.0f}" for t, _ in runs) + " events/s"
        return PhaseResult("(a) raw aiokafka loop", n, took, cpu, note)

    async def pipeline(self, phase: str, label: str, model: str, n: int,
                       templates: Sequence[dict] | None = None) -> PhaseResult:
        log.info("phase %s: worker with model %r, %d events", label, model, n)
        names = self.topics(phase)
        self.create_topics(names)
        payloads, ids = make_events(templates or self.templates, n, phase)
        await produce_all(self.kafka, names["events"], payloads)
        watcher = await OutputWatcher(self.kafka, names["scored"], names["dead"]).start()
        worker = self.new_worker(self.worker_env(phase, model, names), name=f"worker-{phase}")
        try:
            t_launch = time.monotonic()
            await asyncio.to_thread(worker.start)
            t0 = time.monotonic()
            pid = worker.process.pid
            c0 = self.cpu.snapshot(pid)
            log.info("phase %s: worker pid %s joined in %.1fs; draining %d events", label, pid, t0 - t_launch, n)
            await watcher.wait_for(ids, worker, f"phase {label}")
            cpu = CpuMeter.diff(c0, self.cpu.snapshot(pid))
            t1 = watcher.last_at
        finally:
            await watcher.stop()
            await asyncio.to_thread(worker.stop)
        took = t1 - t0
        first_to_last = (watcher.last_at - watcher.first_at) if watcher.first_at else float("nan")
        span = max(watcher.scored_at) - min(watcher.scored_at)
        batches = len(set(watcher.scored_at))  # one scored_at per processed batch
        note = (f"join->first scored {watcher.first_at - t0:.2f}s, first->last {first_to_last:.2f}s "
                f"({n / first_to_last:.0f}/s), worker scored_at span {span:.2f}s, dup {watcher.duplicates}, "
                f"{batches} batches of {n / batches:.0f} events on average")
        log.info("phase %s: %d events in %.2fs = %.0f events/s (%s)", label, n, took, n / took, note)
        return PhaseResult(label, n, took, cpu, note)

    async def scaled(self, phase: str, label: str, model: str, n: int, workers: int,
                     templates: Sequence[dict] | None = None) -> PhaseResult:
        """Like ``pipeline`` with ``workers`` worker processes in one consumer group.

        The events are produced only once every worker has joined: a worker that joins first
        would otherwise drain part of the topic alone while the others are still starting, and
        the timed interval would measure that. So the clock starts at the first produce.
        """
        log.info("phase %s: %d workers with model %r, %d events", label, workers, model, n)
        names = self.topics(phase)
        self.create_topics(names)
        payloads, ids = make_events(templates or self.templates, n, phase)
        watcher = await OutputWatcher(self.kafka, names["scored"], names["dead"]).start()
        procs = [self.new_worker(self.worker_env(phase, model, names), name=f"worker-{phase}-{i}")
                 for i in range(workers)]
        try:
            for w in procs:  # one after the other: each start() waits for its own assignment
                await asyncio.to_thread(w.start)
            await asyncio.sleep(2.0)  # the first workers' rebalance after the last join
            pids = [w.process.pid for w in procs]
            c0 = self.cpu.snapshot(pids)
            t0 = time.monotonic()
            await produce_all(self.kafka, names["events"], payloads)
            await watcher.wait_for(ids, _AnyDead(procs), f"phase {label}")
            cpu = CpuMeter.diff(c0, self.cpu.snapshot(pids))
            t1 = watcher.last_at
        finally:
            await watcher.stop()
            for w in procs:
                await asyncio.to_thread(w.stop)
        note = f"{workers} workers, clock from the first produce; dup {watcher.duplicates}"
        log.info("phase %s: %d events in %.2fs = %.0f events/s (%s)", label, n, t1 - t0, n / (t1 - t0), note)
        return PhaseResult(label, n, t1 - t0, cpu, note)

    async def latency(self, rate: float, n: int, warmup: int = 64) -> LatencyResult:
        log.info("phase (d) latency: %d events at %.0f events/s (model cheap)", n, rate)
        names = self.topics("latency")
        self.create_topics(names)
        watcher = await OutputWatcher(self.kafka, names["scored"], names["dead"]).start()
        worker = self.new_worker(self.worker_env("latency", "cheap", names), name="worker-latency")
        producer = clients.async_producer(self.kafka, linger_ms=0, acks=1)
        await producer.start()
        try:
            await asyncio.to_thread(worker.start)
            # warm-up: first batches pay for connections and lazy imports; not measured
            payloads, warm_ids = make_events(self.templates, warmup, "warm")
            await asyncio.gather(*[await producer.send(names["events"], p) for p in payloads])
            await watcher.wait_for(warm_ids, worker, "latency warm-up")
            ids: set[str] = set()
            interval = 1.0 / rate
            t_start = time.monotonic()
            futures = []
            for i, tpl in zip(range(n), itertools.cycle(with_lang(self.templates))):
                delay = t_start + i * interval - time.monotonic()
                if delay > 0.001:
                    await asyncio.sleep(delay)
                event_id = f"lat-{i:07d}"
                ids.add(event_id)
                futures.append(await producer.send(names["events"], make_event(tpl, event_id, time.time())))
            await asyncio.gather(*futures)
            sent_in = time.monotonic() - t_start
            log.info("phase (d): sent %d events in %.2fs (%.0f/s)", n, sent_in, n / sent_in)
            await watcher.wait_for(ids, worker, "phase (d) latency")
        finally:
            await producer.stop()
            await watcher.stop()
            await asyncio.to_thread(worker.stop)
        order = sorted(ids)  # ids are numbered in send order
        return LatencyResult(n, rate, [watcher.latency_ms[i] for i in order], [watcher.worker_ms[i] for i in order])


class _AnyDead:
    """Several workers seen as one by ``OutputWatcher.wait_for``: dead when any of them is."""

    def __init__(self, workers) -> None:
        self.workers = workers

    @property
    def alive(self) -> bool:
        return all(w.alive for w in self.workers)

    def log_tail(self, n: int) -> str:
        return "\n".join(f"--- worker {i}\n{w.log_tail(n)}" for i, w in enumerate(self.workers))


# -------------------------------------------------------------------------------------- report
def code_version() -> str:
    """The commit measured (+ "dirty" with uncommitted changes): the pipeline changes under a bench."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (rev or "?") + ("+dirty" if dirty else "")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def report(results: list[PhaseResult], lat: LatencyResult | None, settings, load: tuple[str, str]) -> str:
    base = results[0].rate
    lines = [
        "",
        f"babelwatch bench pipeline   ({os.cpu_count()} cpus, batch_size={settings.batch_size}, "
        f"batch_wait_s={settings.batch_wait_s}, {PARTITIONS} partitions, Tansu memory://)",
        f"code {code_version()}; load average before {load[0]}, after {load[1]} "
        "(other work on the machine skews every figure)",
        "",
        f"{'phase':<34}{'events':>8}{'seconds':>10}{'events/s':>11}{'vs (a)':>9}",
        "-" * 72,
    ]
    for r in results:
        lines.append(f"{r.name:<34}{r.events:>8}{r.seconds:>10.2f}{r.rate:>11.0f}{r.rate / base:>9.3f}")
    lines.append("-" * 72)
    by = {r.name[:3]: r for r in results}
    if "(b)" in by:
        lines.append(f"ratio (b)/(a) = {by['(b)'].rate / base:.3f} (events carry lang)")
    if "(b-" in by:
        lines.append(f"ratio (b-)/(a) = {by['(b-'].rate / base:.3f} (events without lang: language identification)")
    if "(b2" in by:
        lines.append(f"ratio (b2)/(a) = {by['(b2'].rate / base:.3f}"
                     + (f"; 2 workers vs 1: x{by['(b2'].rate / by['(b)'].rate:.2f}" if "(b)" in by else ""))
    if "(c)" in by:
        lines.append(f"ratio (c)/(a) = {by['(c)'].rate / base:.3f}")
    if lat is not None:
        lines.append(
            f"latency produce->scored record received (d), {lat.events} events at {lat.rate:.0f}/s, model cheap: "
            f"p50 {lat.pct(50):.1f} ms, p99 {lat.pct(99):.1f} ms, max {max(lat.latencies_ms):.1f} ms"
        )
        lines.append(
            f"  of which event ts -> worker's scored_at: p50 {lat.pct(50, lat.worker_ms):.1f} ms, "
            f"p99 {lat.pct(99, lat.worker_ms):.1f} ms"
        )
        lines.append(
            f"  (Tansu answers an empty fetch only after the consumer's fetch_max_wait, here "
            f"{settings.consumer_fetch_max_wait_ms} ms\n"
            "   (BABELWATCH_CONSUMER_FETCH_MAX_WAIT_MS; Faust's own 1500 ms gave p50 ~1.3 s), even when records "
            "arrive meanwhile; bench/RESULTS.md)"
        )
    lines += ["", "CPU per event (µs), measured from /proc over each phase's timed interval:",
              f"{'phase':<34}{'worker':>9}{'broker':>9}{'triton':>9}{'redis':>9}{'bench':>9}{'total':>9}"]
    for r in results:
        c = r.cpu
        row = [c.get(k, 0.0) for k in ("worker", "broker", "triton", "redis", "bench")]
        cells = "".join(f"{v / r.events * 1e6:>9.0f}" for v in row)
        lines.append(f"{r.name:<34}{cells}{sum(row) / r.events * 1e6:>9.0f}")
    lines.append("(bench = this process: in (a) it IS the consumer; in (b)/(c) it reads the scored topic)")
    for key in ("(b)", "(b-"):
        if key not in by:
            continue
        b = by[key]
        lines.append(
            f"worker CPU {key}{')' if key == '(b-' else ''}: {b.cpu['worker']:.2f} s for {b.events} events = "
            f"{b.cpu['worker'] / b.events * 1e6:.0f} µs/event "
            f"({b.cpu['worker'] / b.seconds * 100:.0f}% of one core over {b.seconds:.2f}s)"
        )
    notes = [f"{r.name}: {r.note}" for r in results if r.note]
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def report_json(results: list[PhaseResult], lat: LatencyResult | None, settings, load: tuple[str, str]) -> dict:
    """The report's figures as data (``babelwatch bench pipeline --json``)."""
    base = results[0].rate
    phases = [{
        "phase": r.name, "events": r.events, "seconds": round(r.seconds, 4), "events_per_s": round(r.rate, 1),
        "ratio_vs_raw": round(r.rate / base, 4),
        "cpu_us_per_event": {k: round(v / r.events * 1e6, 1) for k, v in r.cpu.items()},
        "note": r.note,
    } for r in results]
    out = {"cpus": os.cpu_count(), "batch_size": settings.batch_size, "partitions": PARTITIONS,
           "code": code_version(), "load_before": load[0], "load_after": load[1], "phases": phases}
    if lat is not None:
        out["latency_ms"] = {"events": lat.events, "rate": round(lat.rate, 1), "p50": round(lat.pct(50), 2),
                             "p99": round(lat.pct(99), 2), "max": round(max(lat.latencies_ms), 2),
                             "worker_p50": round(lat.pct(50, lat.worker_ms), 2),
                             "worker_p99": round(lat.pct(99, lat.worker_ms), 2)}
    return out


def _ensure_model(settings) -> None:
    artifact = Path(settings.triton_repo) / "fusion" / "1" / "artifact" / "model.onnx"
    if not artifact.exists():
        log.info("building the fusion model (%s; minutes the first time, cached afterwards)", artifact)
        from fusion_model.build import build_and_link as build

        build()


def _cleanup_redis(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
        log.info("redis: deleted %d bench keys (prefix %s)", len(keys), prefix)
    finally:
        client.close()


def with_lang(templates: Sequence[dict]) -> list[dict]:
    """The templates that carry ``lang`` (no language identification needed)."""
    return [t for t in templates if t.get("lang")]


def without_lang(templates: Sequence[dict]) -> list[dict]:
    """Every template with ``lang`` removed: language identification is real work for each."""
    return [{k: v for k, v in t.items() if k != "lang"} for t in templates]


async def _phases(bench: Bench, n_events: int, n_real: int) -> tuple[list[PhaseResult], LatencyResult]:
    with counter("bench pipeline: phases (a) (b) (b-) (b2) (c) (d)", total=6) as done:
        results = [await bench.raw(n_events)]
        done(1)
        results.append(await bench.pipeline("cheap", "(b) pipeline, model cheap", "cheap", n_events,
                                            with_lang(bench.templates)))
        done(2)
        results.append(await bench.pipeline("nolang", "(b-) same, events without lang", "cheap", n_events,
                                            without_lang(bench.templates)))
        done(3)
        results.append(await bench.scaled("cheap2", "(b2) 2 workers, model cheap", "cheap", n_events, workers=2,
                                          templates=with_lang(bench.templates)))
        done(4)
        try:
            results.append(await bench.pipeline("fusion", "(c) pipeline, model fusion", "fusion", n_real))
        except RuntimeError as exc:  # the real model's own trouble must not cost the cheap-model figures
            log.error("phase (c) failed, left out of the report: %s", str(exc).splitlines()[0])
        done(5)
        rate = 0.5 * results[1].rate  # half of (b)'s rate
        n_lat = int(min(4000, max(500, rate * 4)))  # at least 500 events, about 4 s of pacing
        lat = await bench.latency(rate, n_lat)
        done(6)
    return results, lat


def run_on_local_stack(settings, kind: str, models: Sequence[str], work: Callable[[Bench], Awaitable[T]]
                       ) -> tuple[int, T | None, Path]:
    """Start a local stack (broker, Redis, Triton serving ``models``), run ``await work(bench)``,
    stop everything whatever happens (Ctrl-C and SIGTERM included) and drop the bench's Redis keys.
    Returns (exit code: 0, 1 failed, 130 interrupted; the work's result; the run directory)."""
    from babelwatch.localstack.stack import LocalStack

    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(settings.run_dir) / f"{kind}-{stamp}-{os.getpid()}"
    prefix = f"{kind}{os.getpid()}x{int(time.time())}"
    templates = load_templates()
    # SIGTERM (timeout, CI cancel) would end the process without running the cleanup below, and
    # the servers live in their own sessions: turn it into KeyboardInterrupt like Ctrl-C.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    stack = LocalStack(redis_url=settings.redis_url, triton_repo=settings.triton_repo, run_dir=run_dir,
                       triton_load_models=tuple(models))
    bench: Bench | None = None
    try:
        stack.start()
        redis_pid = stack.redis.process.pid if stack.redis.owned else find_pid("redis-server")
        bench = Bench(settings, stack, run_dir, templates, prefix, CpuMeter(stack, redis_pid))
        return 0, asyncio.run(work(bench)), run_dir
    except KeyboardInterrupt:
        log.error("%s interrupted, stopping everything (logs in %s)", kind, run_dir)
        return 130, None, run_dir
    except Exception:
        log.exception("%s failed (logs in %s)", kind, run_dir)
        return 1, None, run_dir
    finally:
        for worker in bench.workers if bench is not None else ():
            try:
                worker.stop()
            except Exception:
                log.exception("failed to stop %s", worker.process.name)
        try:
            if stack.redis._url is not None:
                _cleanup_redis(stack.redis_url, prefix)
        except Exception:
            log.exception("redis cleanup failed")
        stack.stop()
        signal.signal(signal.SIGTERM, previous)


def run(settings, n_events: int = 20_000, n_real: int = 3_000, as_json: bool = False) -> int:
    from babelwatch.localstack.triton import SERVED_MODELS

    if n_events < 1 or n_real < 1:
        log.error("--events and --real-events must be positive")
        return 2
    t_all = time.monotonic()
    load_before = loadavg()
    _ensure_model(settings)
    rc, got, run_dir = run_on_local_stack(settings, "bench", SERVED_MODELS, lambda b: _phases(b, n_events, n_real))
    if rc:
        return rc
    results, lat = got
    if as_json:
        out = report_json(results, lat, settings, (load_before, loadavg()))
        out["wall_s"], out["logs"] = round(time.monotonic() - t_all, 1), str(run_dir)
        sys.stdout.write(json.dumps(out) + "\n")
        return 0
    sys.stdout.write(report(results, lat, settings, (load_before, loadavg())))
    sys.stdout.write(f"\ntotal wall time {time.monotonic() - t_all:.0f}s; logs in {run_dir}\n")
    sys.stdout.flush()
    return 0
