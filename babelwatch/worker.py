"""Run the worker (``babelwatch worker``): topics are created first, with explicit partitions.

``--processes N`` (or ``BABELWATCH_WORKER_PROCESSES``): the pipeline is CPU-bound and one Python
process uses one core, so this process supervises N worker processes, each its own member of the
same consumer groups (the events topic's partitions spread over them). SIGTERM/SIGINT go to every
child; a child that dies is started again (after a pause, so a crash loop does not spin).
"""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

log = logging.getLogger("babelwatch.worker")
RESTART_PAUSE_S = 2.0
STOP_GRACE_S = 20.0  # each child settles its batch in flight within seconds (stream/batches.py)


def run_worker(loglevel: str = "info", processes: int = 1) -> int:
    if processes > 1:
        return supervise(processes)
    import faust

    from stream import agents  # noqa: F401  (registers the agent and services)
    from stream.admin import ensure_topics
    from stream.app import app, settings
    from stream.topics import topic_partitions

    settings.run_dir.mkdir(parents=True, exist_ok=True)  # Faust keeps its data directory there
    ensure_topics(settings, topic_partitions())
    faust.Worker(app, loglevel=loglevel).execute_from_commandline()
    return 0


def supervise(n: int) -> int:
    """N children ``python -m babelwatch worker --processes 1``, output passed through."""
    from contracts.settings import get_settings
    from stream.admin import ensure_topics
    from stream.topics import topic_partitions

    ensure_topics(get_settings(), topic_partitions())  # once, before N processes race to create them
    argv = [sys.executable, "-m", "babelwatch", "worker", "--processes", "1"]
    children: list[subprocess.Popen | None] = [None] * n
    stopping = False

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child is not None and child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    started_at = [0.0] * n
    try:
        while not stopping:
            for i, child in enumerate(children):
                if child is not None and child.poll() is None:
                    continue
                if child is not None:
                    log.warning("worker process %d (pid %d) exited with %s; starting it again", i, child.pid,
                                child.returncode)
                    children[i] = None
                if time.monotonic() - started_at[i] < RESTART_PAUSE_S:
                    continue
                # own session: a terminal's Ctrl-C reaches the children once, through stop() here
                children[i] = subprocess.Popen(argv, start_new_session=True)
                started_at[i] = time.monotonic()
                log.info("worker process %d: pid %d", i, children[i].pid)
            time.sleep(0.2)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in children:
            if child is None:
                continue
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker process %d did not stop in %.0fs: killed", child.pid, STOP_GRACE_S)
                child.kill()
                child.wait()
        return 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
