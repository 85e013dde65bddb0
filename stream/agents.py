"""The Faust topology: one agent turns each micro-batch of raw events into scores, windows and alerts.

Validation, language, scoring, windowing and detection are one agent on purpose: every hop through
Kafka costs Faust ~250 us of CPU per event (shared NOTES), so the steps run as calls on a batch
(workers.pipeline) and only their outputs are produced. Outputs are awaited before the batch is
acknowledged: at-least-once, nothing lost.

Alert notifications (an alert started firing, was re-sent, or resolved) go to the alerts topic as
CloudEvents 1.0 JSON (``workers.alerting.cloudevents.alert_event``), keyed by the alert's
fingerprint so one alert's events stay in order on one partition. They are not sent from the batch
result: the lifecycle's commit queued them in a Redis outbox atomically with the transition, and
the agents drain that outbox after each batch that notified, at start (what a killed worker left)
and after every staleness sweep (workers.runtime). Closed windows take the same path to their topic.
"""
from __future__ import annotations

import asyncio
import logging

import mode
import orjson

from stream import records, topics
from stream.app import app, settings
from stream.admin import TopicIds
from workers.runtime import PipelineRuntime
from workers.validate import Origin
from workers.pipeline import BatchResult, RawRecord
from workers.retry import until_available, until_done

log = logging.getLogger("babelwatch.stream")


@app.service
class Pipeline(mode.Service):
    """Owns the pipeline's connections for the worker's lifetime."""

    runtime: PipelineRuntime | None = None

    async def on_start(self) -> None:
        # faust's worker sets the ROOT logger to DEBUG, which builds a discarded record per send
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("babelwatch").setLevel(logging.INFO)
        self.topic_ids = TopicIds(settings.bootstrap)
        Pipeline.runtime = PipelineRuntime(settings, send_alerts=_send_alerts, describe_topics=self.topic_ids)
        await Pipeline.runtime.start()

    async def on_stop(self) -> None:
        if Pipeline.runtime is not None:
            await Pipeline.runtime.stop()
        self.topic_ids.close()


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


async def _drain_alerts() -> None:
    await until_available(Pipeline.runtime.drain_alerts, "drain alert outbox")


async def _drain_closed() -> None:
    await until_available(lambda: Pipeline.runtime.outbox.drain(_send_closed), "drain closed-window outbox")


async def _ready(part: str) -> PipelineRuntime:
    while Pipeline.runtime is None or getattr(Pipeline.runtime, part) is None:
        await asyncio.sleep(0.05)  # the service starts alongside the agent
    return Pipeline.runtime


@app.agent(topics.events)
async def process(stream):
    await _ready("processor")
    # what a worker killed between a Redis commit and its Kafka send left behind goes out first
    await _drain_alerts()
    await _drain_closed()
    async for events in stream.take_events(settings.batch_size, within=settings.batch_wait_s):
        rt = await _ready("processor")
        batch = [
            RawRecord(e.message.value or b"", Origin(e.message.topic, e.message.partition, e.message.offset))
            for e in events
        ]
        # bad records are dead-lettered one by one inside; what still fails is the system's, so the
        # batch waits and is retried whole: never acknowledged unprocessed, never a crashed agent
        await until_done(lambda: _process(rt, batch), "process batch")


async def _process(rt: PipelineRuntime, batch: list[RawRecord]) -> None:
    result: BatchResult = await rt.processor.process_isolated(batch)
    await _send_all(
        [(settings.topic_deadletter, d) for d in result.dead]
        + [(settings.topic_scored, s) for s in result.scored]
        + [(settings.topic_late, s) for s in result.late]
    )
    if result.alerts:
        await _drain_alerts()
    if result.outbox:
        await _drain_closed()


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
    async for events in stream.take_events(256, within=0.2):
        rt = await _ready("detection")
        batch = [RawRecord(e.message.value or b"", Origin(e.message.topic, e.message.partition, e.message.offset))
                 for e in events]
        await until_done(lambda: _detect(rt, batch), "detect")


async def _detect(rt: PipelineRuntime, batch: list[RawRecord]) -> None:
    notified, dead = await rt.detection.process_isolated(batch)
    if dead:
        await _send_all([(settings.topic_deadletter, d) for d in dead])
    if notified:
        await _drain_alerts()


@app.on_partitions_assigned.connect
async def _assigned(app, assigned, **kwargs) -> None:
    rt = Pipeline.runtime
    if rt is not None and rt.lifetimes is not None:
        # a group join after a broker restart: learn the topics' lifetimes before records flow
        try:
            await rt.lifetimes.refresh({tp.topic for tp in assigned if tp.topic == settings.topic_events})
        except Exception as exc:  # the check runs again when a partition's offsets go backwards
            log.warning("topic ids not refreshed on assignment: %s", exc)
    # launchers wait for this line: an open port or a started process is not readiness
    log.info("partitions assigned: %d", len(assigned))
