"""The Faust topology: agent `process` runs each micro-batch of raw events through the pipeline
(workers.pipeline) and produces its outputs; agent `detect` judges closed windows. Alert
notifications and closed windows leave through Redis outboxes drained here. Why one agent, and the
delivery guarantees: docs/design.md."""
from __future__ import annotations

import asyncio
import logging

import orjson

from stream import records, topics
from stream.app import app, settings
from stream.admin import TopicIds
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


@app.agent(topics.events)
async def process(stream):
    await runtime.ready.wait()
    # what a worker killed between a Redis commit and its Kafka send left behind goes out first
    await _drain_alerts()
    await _drain_closed()
    async for events in stream.take_events(settings.batch_size, within=settings.batch_wait_s):
        batch = [
            RawRecord(e.message.value or b"", Origin(e.message.topic, e.message.partition, e.message.offset))
            for e in events
        ]
        # bad records are dead-lettered one by one inside; what still fails is the system's, so the
        # batch waits and is retried whole: never acknowledged unprocessed, never a crashed agent
        await until_done(lambda: _process(runtime, batch), "process batch")


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
    if runtime.ready.is_set() and runtime.lifetimes is not None:
        # a group join after a broker restart: learn the topics' lifetimes before records flow
        try:
            await runtime.lifetimes.refresh({tp.topic for tp in assigned if tp.topic == settings.topic_events})
        except Exception as exc:  # the check runs again when a partition's offsets go backwards
            log.warning("topic ids not refreshed on assignment: %s", exc)
    # launchers wait for this line: an open port or a started process is not readiness
    log.info("partitions assigned: %d", len(assigned))
