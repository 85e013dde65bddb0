"""Replay a JSON-lines file of events into Kafka (``babelwatch produce``).

Lines are sent as they are, so invalid lines reach the dead-letter path unchanged. Valid-looking
objects without ``ts`` are stamped with the send time, which makes a recorded file replay as a live
stream. Events with ``meta.burst`` are sent back to back (no pacing): that is how the demo injects a
volume spike.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Iterator

import orjson

from contracts.settings import Settings
from stream import clients

log = logging.getLogger("babelwatch.replay")


def json_lines(path: Path) -> Iterator[tuple[bytes, dict | None]]:
    """(line, its object) per non-empty line of a JSON-lines file; None where the line is not a
    JSON object (the samples hold such lines on purpose)."""
    for raw in path.read_bytes().splitlines():
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError:
            obj = None
        yield raw, obj if isinstance(obj, dict) else None


def stamped_lines(path: Path, now=time.time) -> Iterator[tuple[bytes, bool]]:
    """(payload, is_burst) per non-empty line; stamping happens lazily, at send time."""
    for raw, obj in json_lines(path):
        if obj is None:
            yield raw, False
            continue
        burst = bool(isinstance(obj.get("meta"), dict) and obj["meta"].get("burst"))
        if "ts" not in obj:
            obj["ts"] = now()
        yield orjson.dumps(obj), burst


def replay(
    path: Path,
    settings: Settings,
    topic: str,
    rate: float = 0.0,
    progress_every: int = 100,
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send every line of ``path``; ``rate`` events/s (0 = as fast as possible). Returns lines sent."""
    producer = clients.producer(settings)
    interval = 1.0 / rate if rate > 0 else 0.0
    sent = 0
    next_at = time.monotonic()
    try:
        for payload, burst in stamped_lines(Path(path)):
            if interval and not burst:
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                next_at = max(next_at, time.monotonic() - interval) + interval
            producer.send(topic, payload)
            sent += 1
            if on_sent is not None:
                on_sent(sent)
            if progress_every and sent % progress_every == 0:
                log.info("produced %d events", sent)
        producer.flush()
    finally:
        producer.close()
    log.info("produced %d events to %s", sent, topic)
    return sent
