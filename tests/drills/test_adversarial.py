"""Adversarial inputs through the real stream: no single event may stall, blind or silently drop it.

The corpus (``tests/hostile_corpus.py``: malformed JSON, invalid UTF-8, deep nesting, huge
texts, odd timestamps, language tags and topics, image traps such as a 1 x 10,000,000 PNG, a
49-Mpx RGBA PNG or a decompression bomb, image URLs aimed at private addresses, ...) goes through
the real broker, a real ``babelwatch worker`` process and the real Triton ``fusion`` model,
interleaved with valid events, after a warm-up and before a tail of valid events. Then:

- every input is accounted for exactly once: scored, dead-lettered with a non-empty reason, or
  late (scored and in the late topic); matched by event id, or by its (partition, offset) in the
  dead letter; 0 lost, 0 twice;
- each case got the outcome class the corpus expects (and, where the contract names them, one of
  the expected reasons; dead letters carry the raw payload);
- every valid event is scored and on time (not late), those produced AFTER the corpus included:
  the stream keeps going and no event moved a topic's clock;
- the valid topics' windows in Redis count exactly their scored, on-time events (hostile topics
  such as ``ADV-A:*`` or ``ADV-A*`` do not leak into them);
- the worker and Triton stay alive, and their memory (VmRSS sampled every 0.2 s from /proc)
  grows by less than a bound.

``BW_ADVERSARIAL_CASES=regex`` runs only the matching cases (diagnosis); the default is all.
"""
from __future__ import annotations

import os
import re
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass

import orjson
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from babelwatch.bench.soak import RssSampler, group_pids
from contracts.schema import LABELS
from tests import hostile_corpus as hc

pytestmark = pytest.mark.integration

WINDOW = 60  # the world's default window_s
STALL_S = 30.0  # no new output for this long while inputs are unaccounted: the stream is stuck
CORPUS_DEADLINE_S = 120.0
TAIL_DEADLINE_S = 40.0
MIB = 1 << 20
# Memory bounds, growth of VmRSS over the corpus vs after the warm-up (which already scored text
# and a small image). Measured with every trap refused from its header: worker +~15 MiB, Triton
# (server + stubs) +~20 MiB. Decoding one 7000 x 7000 RGBA PNG alone costs Triton ~460 MiB.
WORKER_GROWTH_CAP = 300 * MIB
TRITON_GROWTH_CAP = 300 * MIB
WORKER_HWM_CAP = 1024 * MIB  # the worker's lifetime peak (it starts in this test): ~190 MiB measured


@dataclass
class Input:
    kind: str  # "warm", "valid", "case", "tail"
    payload: bytes | None
    event_id: str | None
    case: hc.Case | None = None
    partition: int | None = None
    offset: int | None = None

    @property
    def name(self) -> str:
        return self.case.name if self.case else f"{self.kind}:{self.event_id}"


class Outputs:
    """Reads the world's scored, late and dead-letter topics from the start, in a thread."""

    def __init__(self, bootstrap: str, topics: dict[str, str]) -> None:
        self.topics = topics
        self.scored: list[dict] = []
        self.late: list[dict] = []
        self.dead: list[dict] = []
        self.last_change = time.monotonic()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                       enable_auto_commit=False, fetch_max_bytes=8 * MIB,
                                       max_partition_fetch_bytes=8 * MIB)
        self._consumer.assign([TopicPartition(topics["scored"], p) for p in range(4)]
                              + [TopicPartition(topics["late"], 0), TopicPartition(topics["deadletter"], 0)])
        self._thread = threading.Thread(target=self._run, daemon=True, name="adversarial-outputs")
        self._thread.start()

    def _run(self) -> None:
        dest = {self.topics["scored"]: self.scored, self.topics["late"]: self.late,
                self.topics["deadletter"]: self.dead}
        try:
            while not self._stop.is_set():
                for tp, msgs in self._consumer.poll(timeout_ms=200).items():
                    with self._lock:
                        dest[tp.topic].extend(orjson.loads(m.value) for m in msgs)
                        self.last_change = time.monotonic()
        except BaseException as e:  # surfaced by the test
            self.error = e
        finally:
            self._consumer.close()

    def scored_ids(self) -> set[str]:
        with self._lock:
            return {s.get("id") for s in self.scored}

    def count(self) -> int:
        with self._lock:
            return len(self.scored) + len(self.late) + len(self.dead)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def produce(producer: KafkaProducer, topic: str, inputs: list[Input]) -> None:
    # a tombstone (null value) needs a key
    futures = [(inp, producer.send(topic, inp.payload, key=b"tombstone" if inp.payload is None else None))
               for inp in inputs]
    producer.flush()
    for inp, fut in futures:
        md = fut.get(timeout=30)
        inp.partition, inp.offset = md.partition, md.offset


def valid_inputs(kind: str, n: int, start: int = 0, **kw) -> list[Input]:
    out = []
    for i in range(start, start + n):
        ev = hc.valid_event(f"{kind}-{i}", i, time.time(), **kw)
        out.append(Input(kind, orjson.dumps(ev), ev["id"]))
    return out


def wait_for(pred, deadline_s: float, outputs: Outputs, worker, stall_s: float = STALL_S) -> str:
    """Until ``pred()``; returns "" or why it gave up (deadline, stall, dead worker)."""
    t_end = time.monotonic() + deadline_s
    while True:
        if pred():
            return ""
        now = time.monotonic()
        if outputs.error is not None:
            return f"output reader failed: {outputs.error!r}"
        if not worker.alive:
            return f"worker exited:\n{worker.log_tail(30)}"
        if now > t_end:
            return f"deadline of {deadline_s:.0f}s passed"
        if now - outputs.last_change > stall_s:
            return f"no output for {stall_s:.0f}s (stalled)"
        time.sleep(0.2)


def selected_corpus(now: float) -> list[hc.Case]:
    corpus = hc.build(now)
    pattern = os.environ.get("BW_ADVERSARIAL_CASES")
    return [c for c in corpus if re.search(pattern, c.name)] if pattern else corpus


def classify(n_scored: int, n_late: int, n_dead: int) -> str:
    if (n_scored, n_late, n_dead) == (1, 0, 0):
        return hc.SCORED
    if (n_scored, n_late, n_dead) == (1, 1, 0):
        return hc.LATE
    if (n_scored, n_late, n_dead) == (0, 0, 1):
        return hc.DEAD
    if (n_scored, n_late, n_dead) == (0, 0, 0):
        return "lost"
    return f"duplicated(scored={n_scored}, late={n_late}, dead={n_dead})"


def outcome_ok(expect: str, got: str) -> bool:
    if expect == hc.DEAD_OR_SCORED:
        return got in (hc.DEAD, hc.SCORED)
    return got == expect


def expected_raw(payload: bytes | None) -> str | None:
    """The dead letter's ``raw``, where the contract fixes it: the payload as UTF-8 text."""
    data = payload or b""
    if len(data) > 100_000:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # replaced bytes: any non-empty rendering will do


def test_hostile_corpus_is_accounted_for_and_the_stream_keeps_going(world):
    w = world(batch_size=16, fetch_image_urls="true", image_fetch_timeout_s=2, spike_min_count=10**9)
    bootstrap = w.stack.bootstrap
    events_topic = w.topics["events"]
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 * MIB)
    triton_pid = w.stack.triton.process.pid
    outputs = sampler = None
    report: list[str] = []
    try:
        outputs = Outputs(bootstrap, w.topics)
        worker = w.start_worker("adversarial")
        sampler = RssSampler({"worker": lambda: [worker.process.pid], "triton": lambda: group_pids(triton_pid)},
                             interval_s=0.2).start()

        # 1. warm-up: text in both valid topics and a small image; their watermarks exist from here on
        warm = valid_inputs("warm", 6)
        img = hc.valid_event("warm-img", 0, time.time())
        img["image_b64"] = hc.b64(hc.small_image("PNG"))
        warm.append(Input("warm", orjson.dumps(img), img["id"]))
        produce(producer, events_topic, warm)
        why = wait_for(lambda: {i.event_id for i in warm} <= outputs.scored_ids(), 90, outputs, worker, stall_s=60)
        assert not why, f"warm-up: {why}; worker log:\n{worker.log_tail(40)}"
        time.sleep(0.5)
        baseline = sampler.current()

        # 2. the corpus, each case between two valid events
        t_corpus = time.time()
        cases = selected_corpus(t_corpus)
        middle: list[Input] = []
        valid = iter(valid_inputs("valid", len(cases) + 1))
        for case in cases:
            middle.append(next(valid))
            middle.append(Input("case", case.payload, case.event_id, case))
        middle.append(next(valid))
        t0 = time.monotonic()
        produce(producer, events_topic, middle)
        why_corpus = wait_for(lambda: _all_accounted(outputs, warm + middle), CORPUS_DEADLINE_S, outputs, worker)
        corpus_s = time.monotonic() - t0

        # 3. valid events produced after the corpus: scored, and on time
        tail = valid_inputs("tail", 20)
        produce(producer, events_topic, tail)
        why_tail = wait_for(lambda: {i.event_id for i in tail} <= outputs.scored_ids(), TAIL_DEADLINE_S, outputs,
                            worker)
        time.sleep(2.0)  # duplicates would show up meanwhile
        peak = sampler.peak()
        final = sampler.current()
        hwm = sampler.hwm()
        worker_alive = worker.alive
    finally:
        if sampler is not None:
            sampler.stop()
        producer.close()
        if outputs is not None:
            outputs.stop()

    inputs = warm + middle + tail
    problems: list[str] = []
    if why_corpus:
        problems.append(f"corpus: {why_corpus}")
    if why_tail:
        problems.append(f"tail: {why_tail}")
    if not worker_alive:
        problems.append("the worker died")
    try:
        with urllib.request.urlopen(f"{w.stack.triton.http_url}/v2/health/ready", timeout=5) as r:
            triton_ready = r.status == 200
    except OSError:
        triton_ready = False
    if not triton_ready:
        problems.append("Triton is not ready any more")

    outcomes, case_problems, extra = account(inputs, outputs, events_topic)
    problems += extra
    for inp in inputs:
        got = outcomes[id(inp)]
        if inp.case is None:
            if got != hc.SCORED:
                problems.append(f"valid event {inp.event_id} ({inp.kind}): {got}, expected scored on time")
            continue
        line = f"{inp.case.name:<28} expected {inp.case.expect:<15} got {got}"
        report.append(line + "".join(f"; {p}" for p in case_problems.get(id(inp), [])))
        if not outcome_ok(inp.case.expect, got) or case_problems.get(id(inp)):
            problems.append(report[-1])

    problems += window_problems(w, outputs)

    growth = {k: peak[k] - baseline[k] for k in baseline}
    mem = (f"RSS MiB baseline/peak/final: worker {baseline['worker'] / MIB:.0f}/{peak['worker'] / MIB:.0f}/"
           f"{final['worker'] / MIB:.0f} (HWM {hwm['worker'] / MIB:.0f}), triton group "
           f"{baseline['triton'] / MIB:.0f}/{peak['triton'] / MIB:.0f}/{final['triton'] / MIB:.0f} "
           f"(HWM sum {hwm['triton'] / MIB:.0f})")
    if growth["worker"] > WORKER_GROWTH_CAP:
        problems.append(f"worker RSS grew {growth['worker'] / MIB:.0f} MiB > {WORKER_GROWTH_CAP / MIB:.0f}; {mem}")
    if hwm["worker"] > WORKER_HWM_CAP:
        problems.append(f"worker VmHWM {hwm['worker'] / MIB:.0f} MiB > {WORKER_HWM_CAP / MIB:.0f}; {mem}")
    if growth["triton"] > TRITON_GROWTH_CAP:
        problems.append(f"Triton RSS grew {growth['triton'] / MIB:.0f} MiB > {TRITON_GROWTH_CAP / MIB:.0f}; {mem}")

    counts = Counter(outcomes[id(i)] for i in inputs if i.case is not None)
    summary = (f"{len(cases)} cases + {len(inputs) - len(cases)} valid events; corpus accounted in {corpus_s:.1f}s; "
               f"outcomes {dict(counts)}; {mem}")
    print("\n" + summary + "\n" + "\n".join(report))
    assert not problems, (f"{len(problems)} problems ({summary}):\n" + "\n".join(problems)
                          + f"\nworker log tail:\n{worker.log_tail(25)}")


def _all_accounted(outputs: Outputs, inputs: list[Input]) -> bool:
    """Cheap progress test: every id-carrying input seen somewhere, and at least one record per input."""
    if outputs.count() < len(inputs):
        return False
    with outputs._lock:
        seen = {s.get("id") for s in outputs.scored} | {d.get("event_id") for d in outputs.dead}
        positions = {(d.get("partition"), d.get("offset")) for d in outputs.dead}
    return all(i.event_id in seen or (i.partition, i.offset) in positions for i in inputs)


def account(inputs: list[Input], outputs: Outputs, events_topic: str):
    """Per input its outcome class; per input the problems of its records; problems of no input."""
    by_id: dict[str, Input] = {i.event_id: i for i in inputs if i.event_id}
    by_pos: dict[tuple[int, int], Input] = {(i.partition, i.offset): i for i in inputs}
    n = {id(i): [0, 0, 0] for i in inputs}
    problems: dict[int, list[str]] = defaultdict(list)
    stray: list[str] = []
    with outputs._lock:
        scored, late, dead = list(outputs.scored), list(outputs.late), list(outputs.dead)
    for col, records in ((0, scored), (1, late)):
        for rec in records:
            inp = by_id.get(rec.get("id"))
            if inp is None:
                stray.append(f"{'scored' if col == 0 else 'late'} record of no input: {str(rec)[:200]}")
                continue
            n[id(inp)][col] += 1
            if col == 0:
                problems[id(inp)] += scored_problems(inp, rec)
    for d in dead:
        inp = None
        if d.get("source_topic") == events_topic and (d.get("partition"), d.get("offset")) in by_pos:
            inp = by_pos[(d["partition"], d["offset"])]
        elif d.get("event_id") in by_id:
            inp = by_id[d["event_id"]]
        if inp is None:
            stray.append(f"dead letter of no input: {str(d)[:300]}")
            continue
        n[id(inp)][2] += 1
        reason = d.get("reason")
        if not isinstance(reason, str) or not reason:
            problems[id(inp)].append(f"dead letter without a reason: {str(d)[:200]}")
        elif inp.case is not None and inp.case.reasons is not None and reason not in inp.case.reasons:
            problems[id(inp)].append(f"reason {reason!r} not in {sorted(inp.case.reasons)}")
        want_raw = expected_raw(inp.payload)
        if want_raw is not None and d.get("raw") != want_raw:
            problems[id(inp)].append(f"raw payload not kept: {str(d.get('raw'))[:80]!r}")
        if want_raw is None and inp.payload and not d.get("raw"):
            problems[id(inp)].append("raw payload missing")
    outcomes = {k: classify(*v) for k, v in n.items()}
    return outcomes, problems, stray


def scored_problems(inp: Input, rec: dict) -> list[str]:
    out = []
    probs = rec.get("probabilities") or {}
    if set(probs) != set(LABELS):
        out.append(f"probabilities {probs}")
    elif abs(sum(probs.values()) - 1.0) > 1e-3 or rec.get("label") != max(probs, key=probs.get):
        out.append(f"label {rec.get('label')} / probabilities {probs}")
    if inp.case is not None and inp.case.check is not None:
        why = inp.case.check(rec)
        if why:
            out.append(why)
    return out


def window_problems(w, outputs: Outputs) -> list[str]:
    """The valid topics' windows (all languages) count exactly their scored, on-time events, and no
    other window of theirs exists (an odd topic such as ``ADV-A:*`` must not leak into them)."""
    with outputs._lock:
        late_ids = {r.get("id") for r in outputs.late}
        scored = list(outputs.scored)
    expected: Counter = Counter()
    for s in scored:
        if s.get("topic") in hc.VALID_TOPICS and s.get("id") not in late_ids:
            expected[(s["topic"], int(float(s["ts"]) // WINDOW * WINDOW))] += 1
    r = redis.Redis.from_url(w.stack.redis_url)
    got: Counter = Counter()
    try:
        for topic in hc.VALID_TOPICS:
            head = f"{w.prefix}:w:{WINDOW}:{topic}:*:"
            for key in r.scan_iter(match=head.replace("*", "\\*") + "*", count=1000):
                rest = key.decode()[len(head):]
                if rest.isdigit():  # not a longer key of an odd topic: ADV-A:*:en:<start>
                    got[(topic, int(rest))] = int(r.hget(key, "count") or 0)
    finally:
        r.close()
    return [f"window {topic}@{start}: {got[(topic, start)]} counted, {expected[(topic, start)]} scored on time"
            for topic, start in sorted(set(expected) | set(got)) if got[(topic, start)] != expected[(topic, start)]]
