"""Print a topic's records as JSON lines (``babelwatch tail``). Reads from the beginning by default:
Tansu's end offsets are unreliable (shared NOTES), and a monitor's history is small."""
from __future__ import annotations

import sys
import time
from typing import Callable, Iterator

from contracts.settings import Settings
from stream import clients


def records(settings: Settings, topic: str, timeout_s: float | None = None,
            group: str | None = None) -> Iterator[bytes]:
    consumer = clients.consumer(settings, topic, group_id=group, enable_auto_commit=group is not None,
                                consumer_timeout_ms=500)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while deadline is None or time.monotonic() < deadline:
            for msg in consumer:
                yield msg.value
                if deadline is not None and time.monotonic() >= deadline:
                    return
    finally:
        consumer.close()


def tail(settings: Settings, topic: str, timeout_s: float | None = None,
         out: Callable[[str], None] | None = None) -> int:
    write = out or (lambda line: (sys.stdout.write(line + "\n"), sys.stdout.flush()))
    n = 0
    for value in records(settings, topic, timeout_s):
        write(value.decode("utf-8", "replace"))
        n += 1
    return n
