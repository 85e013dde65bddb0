"""Progress bars for long work (``produce``, ``model build``): rich, on stderr, with totals and an
ETA; shown only on a terminal, so pipes and CI logs get no control characters."""
from __future__ import annotations

import logging
from contextlib import contextmanager


def _progress(transient: bool = False):
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=transient,
                    disable=not console.is_terminal)


@contextmanager
def counter(description: str, total: int | None):
    """Yields ``advance_to(n)``."""
    with _progress() as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.update(task, completed=n)


# the build's steps (fusion_model/build.py logs "[step] ..." and "[step] done in ..."); convert and
# data run only when their caches are cold, so the total is the most a build takes
BUILD_STEPS = ("convert", "fingerprint", "encoders", "data", "embed", "train", "export")


class _StepHandler(logging.Handler):
    def __init__(self, bar, task) -> None:
        super().__init__(logging.INFO)
        self.bar, self.task, self.done = bar, task, 0

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("[") and "] done" in msg:
            self.done += 1
            self.bar.update(self.task, completed=self.done)
        elif msg.startswith("[") and msg.endswith("] ..."):
            self.bar.update(self.task, description=f"model build: {msg[1:-5]}")
        elif msg.startswith(("model up to date", "fusion model ready")):
            self.bar.update(self.task, completed=len(BUILD_STEPS), description="model build: done")


@contextmanager
def build_steps(logger_name: str = "babelwatch.model"):
    """A bar over the model build's steps, driven by its step log lines."""
    with _progress() as bar:
        task = bar.add_task("model build", total=len(BUILD_STEPS))
        handler = _StepHandler(bar, task)
        logger = logging.getLogger(logger_name)
        logger.addHandler(handler)
        try:
            yield
        finally:
            logger.removeHandler(handler)
