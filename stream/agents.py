"""The Faust topology: one agent turns each micro-batch of raw events into scores, windows and alerts.

Validation, language, scoring, windowing and detection are one agent on purpose: every hop through
Kafka costs Faust ~250 us of CPU per event (shared NOTES), so the steps run as calls on a batch
(workers.pipeline) and only their outputs are produced. Outputs are awaited before the batch is
acknowledged: at-least-once, nothing lost.

Alert notifications (an alert started firing, was re-sent, or resolved) go to the alerts topic as
CloudEvents 1.0 JSON (``workers.alerting.cloudevents.alert_event``), keyed by the alert's
fingerprint so one alert's events stay in order on one partition.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Sequence

import mode
import orjson

from stream import records, topics
from stream.app import app, settings
from workers.alerting import cloudevents
from workers.alerting.model import AlertInstance
from workers.detection import closed_window_from_json
from workers.runtime import PipelineRuntime
from workers.validate import Origin
from workers.pipeline import RawRecord
from workers.retry import until_available

log = logging.getLogger("babelwatch.stream")


@app.service
class Pipeline(mode.Service):
    """Owns the pipeline's connections for the worker's lifetime."""

    runtime: PipelineRuntime | None = None

    async def on_start(self) -> None:
        # faust's worker sets the ROOT logger to DEBUG, which builds a discarded record per send
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("babelwatch").setLevel(logging.INFO)
        Pipeline.runtime = PipelineRuntime(settings, emit=_send_alerts)
        await Pipeline.runtime.start()

    async def on_stop(self) -> None:
        if Pipeline.runtime is not None:
            await Pipeline.runtime.stop()


async def _send_all(pairs, alerts: Sequence[AlertInstance] = ()) -> None:
    producer = app.producer
    futures = [
        await producer.send(topic, records.key_of(rec), records.encode(rec), None, None, None)
        for topic, rec in pairs
    ] + [
        await producer.send(settings.topic_alerts, a.fingerprint.encode(),
                            cloudevents.dumps(cloudevents.alert_event(a)), None, None, None)
        for a in alerts
    ]
    await asyncio.gather(*futures)
    for a in alerts:
        log.warning("ALERT %s %s: %s%s", a.state, _describe(a), "last active: " if a.state == "resolved" else "",
                    a.annotations.get("summary", ""))


async def _send_alerts(alerts: list[AlertInstance]) -> None:
    """Notifications from outside a batch (the lifecycle's staleness sweep)."""
    await _send_all([], alerts)


def _describe(a: AlertInstance) -> str:
    lab = a.labels
    return (f"{lab.get('detector')} {lab.get('topic')} [{lab.get('language')}] "
            f"{lab.get('severity')} stage={lab.get('stage')} fp={a.fingerprint}")


@app.agent(topics.events)
async def process(stream):
    async for events in stream.take_events(settings.batch_size, within=settings.batch_wait_s):
        while Pipeline.runtime is None or Pipeline.runtime.processor is None:
            await asyncio.sleep(0.05)  # the service starts alongside the agent
        batch = [
            RawRecord(e.message.value or b"", Origin(e.message.topic, e.message.partition, e.message.offset))
            for e in events
        ]
        result = await until_available(lambda: Pipeline.runtime.processor.process(batch), "process batch")
        await _send_all(
            [(settings.topic_deadletter, d) for d in result.dead]
            + [(settings.topic_scored, s) for s in result.scored]
            + [(settings.topic_late, s) for s in result.late],
            result.alerts,
        )
        if result.outbox:
            await until_available(lambda: Pipeline.runtime.outbox.drain(_send_closed), "drain outbox")


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
        await _send_all([], await until_available(lambda: Pipeline.runtime.detection.process(windows), "detect"))


@app.on_partitions_assigned.connect
async def _assigned(app, assigned, **kwargs) -> None:
    # launchers wait for this line: an open port or a started process is not readiness
    log.info("partitions assigned: %d", len(assigned))
