"""Find the records that make a batch fail, so that they alone are dead-lettered.

A batch is all-or-nothing for speed; when it fails for a reason that is not a dependency's state
(``workers.retry.is_transient``), it is split in halves, each half re-run in order, and so on down
to single records. A batch of n with one culprit costs about 2·log2(n) extra runs. Re-running is
safe because every effect of a run is idempotent (offset ledger, outboxes, compare-and-set
lifecycle), and halves keep each partition's records in offset order, which the ledger needs.
"""
from __future__ import annotations

from typing import Awaitable, Callable, Sequence, TypeVar

from workers.retry import is_transient

T = TypeVar("T")
R = TypeVar("R")


async def bisect(items: Sequence[T], call: Callable[[Sequence[T]], Awaitable[R]]
                 ) -> tuple[list[R], list[tuple[T, Exception]]]:
    """Run ``call`` over ``items``, splitting on failure. Returns the results of the chunks that
    succeeded and each record that fails alone with its error, both in input order. Transient
    errors and cancellation propagate: they say nothing about the records."""
    results: list[R] = []
    failures: list[tuple[T, Exception]] = []

    async def run(chunk: Sequence[T]) -> None:
        try:
            results.append(await call(chunk))
            return
        except Exception as exc:
            if is_transient(exc):
                raise
            if len(chunk) == 1:
                failures.append((chunk[0], exc))
                return
        mid = len(chunk) // 2
        await run(chunk[:mid])
        await run(chunk[mid:])

    if items:
        await run(items)
    return results, failures
