"""The Faust topology: one agent turns each micro-batch of raw events into scores, windows and alerts.

Validation, language, scoring, windowing and detection are one agent on purpose: every hop through
Kafka costs Faust ~250 us of CPU per event (shared NOTES), so the steps run as calls on a batch
(workers.pipeline) and only their outputs are produced. Outputs are awaited before the batch is
acknowledged: at-least-once, nothing lost.
"""
from __future__ import annotations

import asyncio
import logging

import mode
import orjson

from stream import records, topics
from stream.app import app, settings
from workers.detection import closed_window_from_json
from workers.runtime import PipelineRuntime
from workers.validate import Origin
from workers.pipeline import RawRecord

log = logging.getLogger("babelwatch.stream")


@app.service
class Pipeline(mode.Service):
    """Owns the pipeline's connections for the worker's lifetime."""

    runtime: PipelineRuntime | None = None

    async def on_start(self) -> None:
        # faust's worker sets the ROOT logger to DEBUG, which builds a discarded record per send
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("babelwatch").setLevel(logging.INFO)
        Pipeline.runtime = PipelineRuntime(settings)
        await Pipeline.runtime.start()

    async def on_stop(self) -> None:
        if Pipeline.runtime is not None:
            await Pipeline.runtime.stop()


async def _send_all(pairs) -> None:
    producer = app.producer
    futures = [
        await producer.send(topic, records.key_of(rec), records.encode(rec), None, None, None)
        for topic, rec in pairs
    ]
    await asyncio.gather(*futures)


@app.agent(topics.events)
async def process(stream):
    async for events in stream.take_events(settings.batch_size, within=settings.batch_wait_s):
        while Pipeline.runtime is None or Pipeline.runtime.processor is None:
            await asyncio.sleep(0.05)  # the service starts alongside the agent
        batch = [
            RawRecord(e.message.value or b"", Origin(e.message.topic, e.message.partition, e.message.offset))
            for e in events
        ]
        result = await Pipeline.runtime.processor.process(batch)
        await _send_all(
            [(settings.topic_deadletter, d) for d in result.dead]
            + [(settings.topic_scored, s) for s in result.scored]
            + [(settings.topic_alerts, a) for a in result.alerts]
            + [(settings.topic_late, s) for s in result.late]
        )
        for a in result.alerts:
            log.warning("ALERT %s", a.message)
        if result.outbox:
            await Pipeline.runtime.outbox.drain(_send_closed)


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
        while Pipeline.runtime is None or Pipeline.runtime.detection is None:
            await asyncio.sleep(0.05)
        windows = [closed_window_from_json(e.message.value) for e in events]
        alerts = await Pipeline.runtime.detection.process(windows)
        await _send_all([(settings.topic_alerts, a) for a in alerts])
        for a in alerts:
            log.warning("ALERT %s", a.message)


@app.on_partitions_assigned.connect
async def _assigned(app, assigned, **kwargs) -> None:
    # launchers wait for this line: an open port or a started process is not readiness
    log.info("partitions assigned: %d", len(assigned))
