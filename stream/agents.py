"""The worker's topology: the events topic's batch source (stream/batches.py) hands each fetched
batch to ``process``, which runs it through the pipeline (workers.pipeline) and produces its
outputs; the Faust agent ``detect`` judges closed windows (low volume). Alert notifications and
closed windows leave through Redis outboxes drained here. ``runtime`` and ``source`` are the
module-level handles (health and metrics attach to them). Guarantees: docs/design.md."""
from __future__ import annotations

import asyncio
import logging
import time

import orjson

from stream import records, topics
from stream.app import app, settings
from stream.admin import TopicIds
from stream.batches import BatchSource
from stream.observe import WorkerObserver
from workers.runtime import PipelineRuntime
from workers.validate import Origin
from workers.pipeline import BatchResult, RawRecord
from workers.retry import until_available, until_done

log = logging.getLogger("babelwatch.stream")


async def _send_all(pairs) -> None:
    producer = app.producer
    futures = [
        await producer.send(topic, records.key_of(rec), records.encode(rec), None, None, None)
        for topic, rec in pairs
    ]
    await asyncio.gather(*futures)


async def _send_alerts(items: list[bytes]) -> None:
    """The alert outbox's send: CloudEvents keyed by fingerprint (their subject), acknowledged."""
    producer = app.producer
    events = [orjson.loads(raw) for raw in items]
    futures = [
        await producer.send(settings.topic_alerts, e["subject"].encode(), raw, None, None, None)
        for e, raw in zip(events, items)
    ]
    await asyncio.gather(*futures)
    for e in events:
        a = e["data"]
        log.warning("ALERT %s %s: %s%s", a["state"], _describe(a["labels"], a["fingerprint"]),
                    "last active: " if a["state"] == "resolved" else "", a["annotations"].get("summary", ""))


def _describe(lab: dict, fp: str) -> str:
    return (f"{lab.get('detector')} {lab.get('topic')} [{lab.get('language')}] "
            f"{lab.get('severity')} stage={lab.get('stage')} fp={fp}")


class WorkerRuntime(PipelineRuntime):
    """The pipeline's runtime as the Faust app's service, wired to the app's producer."""

    async def on_start(self) -> None:
        # faust's worker sets the ROOT logger to DEBUG, which builds a discarded record per send
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("babelwatch").setLevel(logging.INFO)
        await super().on_start()

    async def on_stop(self) -> None:
        await super().on_stop()
        self.describe_topics.close()


async def _drain_alerts() -> None:
    await until_available(runtime.drain_alerts, "drain alert outbox")


async def _drain_closed() -> None:
    await until_available(lambda: runtime.outbox.drain(_send_closed), "drain closed-window outbox")


# Faust starts the agents before its services: they wait for the runtime's `ready` event
runtime = WorkerRuntime(settings, send_alerts=_send_alerts, describe_topics=TopicIds(settings))
app.service(runtime)


async def _before_events() -> None:
    await runtime.ready.wait()
    # what a worker killed between a Redis commit and its Kafka send left behind goes out first
    await _drain_alerts()
    await _drain_closed()


async def _events_assigned(assigned) -> None:
    if runtime.lifetimes is not None:
        # a group join after a broker restart: learn the topics' lifetimes before records flow
        try:
            await runtime.lifetimes.refresh({tp.topic for tp in assigned})
        except Exception as exc:  # the check runs again when a partition's offsets go backwards
            log.warning("topic ids not refreshed on assignment: %s", exc)


async def process(batch: list[RawRecord]) -> BatchResult:
    """The events agent: one fetched batch in, its outputs acknowledged by the broker out."""
    return await _process(runtime, batch)


# The hot topic: a batch source, not a Faust agent (stream/batches.py: why, and its guarantees).
# Its own consumer group: Faust's group speaks Faust's assignor protocol, which aiokafka members
# cannot join; partitions this group never committed start from the Faust group's commits.
source = BatchSource(
    settings, settings.topic_events, process, group=settings.events_group or f"{settings.app_id}-events",
    legacy_group=settings.app_id, batch_size=settings.batch_size, batch_wait_s=settings.batch_wait_s,
    before_start=_before_events, on_assigned=_events_assigned,
)
app.service(source)
# /metrics, /live, /ready (docs/design.md: observability); it adds itself to source.observers
app.service(WorkerObserver(settings, source))


class StageLog:
    """A batch observer: every ``every_s`` seconds, one log line with µs per event of each stage
    (the batches' own timers; bench/RESULTS.md reads them next to py-spy)."""

    def __init__(self, every_s: float = 30.0) -> None:
        self.every_s = every_s
        self._sums: dict[str, float] = {}
        self._events = 0
        self._since = time.monotonic()

    def __call__(self, result: BatchResult | None, n: int, took: float) -> None:
        self._events += n
        sums = self._sums
        sums["batch"] = sums.get("batch", 0.0) + took
        for stage, secs in (result.timings if result is not None else {}).items():
            sums[stage] = sums.get(stage, 0.0) + secs
        if time.monotonic() - self._since >= self.every_s and self._events:
            log.info("stages, µs/event over %d events: %s", self._events,
                     " ".join(f"{k}={v / self._events * 1e6:.1f}" for k, v in sums.items()))
            self._sums, self._events, self._since = {}, 0, time.monotonic()


source.observers.append(StageLog())


async def _process(rt: PipelineRuntime, batch: list[RawRecord]) -> BatchResult:
    result: BatchResult = await rt.processor.process_isolated(batch)
    t0 = time.perf_counter()
    await source.sender.send(
        [(settings.topic_deadletter, records.key_of(d), records.encode(d)) for d in result.dead]
        + [(settings.topic_scored, s.topic.encode(), records.encode(s)) for s in result.scored]
        + [(settings.topic_late, s.topic.encode(), records.encode(s)) for s in result.late]
    )
    result.timings["produce"] = time.perf_counter() - t0
    if result.alerts:
        await _drain_alerts()
    if result.outbox:
        await _drain_closed()
    return result


async def _send_closed(items: list[bytes]) -> None:
    producer = app.producer
    futures = [
        await producer.send(settings.topic_closed_windows, orjson.loads(raw)["topic"].encode(), raw, None, None, None)
        for raw in items
    ]
    await asyncio.gather(*futures)


@app.agent(topics.closed_windows)
async def detect(stream):
    """Stateful detectors on closed windows; low volume (one record per series and window)."""
    await runtime.ready.wait()
    async for events in stream.take_events(256, within=0.2):
        batch = [RawRecord(e.message.value or b"", Origin(e.message.topic, e.message.partition, e.message.offset))
                 for e in events]
        await until_done(lambda: _detect(runtime, batch), "detect")


async def _detect(rt: PipelineRuntime, batch: list[RawRecord]) -> None:
    notified, dead = await rt.detection.process_isolated(batch)
    if dead:
        await _send_all([(settings.topic_deadletter, d) for d in dead])
    if notified:
        await _drain_alerts()


@app.on_partitions_assigned.connect
async def _assigned(app, assigned, **kwargs) -> None:
    # Faust's own group now reads only the closed-window topic (the readiness line, "partitions
    # assigned", is the batch source's)
    log.info("detect stage: %d closed-window partition(s)", len(assigned))
