"""Background-task lifetime shared by the alerting services."""
from __future__ import annotations

import asyncio


async def cancel(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait until it has stopped; None is fine."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
