"""Wait out an unavailable dependency instead of dropping or crashing: the stream pauses and resumes.

Safe because every Redis effect of a batch is idempotent: window updates skip offsets already
applied, closed windows wait in the outbox, alert state is compare-and-set. Re-running the whole
batch after a connection error therefore counts nothing twice. The wait is a plain sleep, so a
shutdown (task cancellation) ends it at once.
"""
from __future__ import annotations

import logging
from typing import Awaitable, Callable, TypeVar

import redis.exceptions
import tenacity

log = logging.getLogger("babelwatch.retry")
T = TypeVar("T")


class DependencyUnavailable(Exception):
    """A server the batch needs is down or not ready: wait and retry the whole batch, never blame
    the events (raised, for example, when a failing row turns out to be a failing server)."""


# Redis answers these as errors, but they describe the server's state, not the command
_REDIS_STATE_ERRORS = ("OOM ", "READONLY ", "LOADING ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ", "BUSY ")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                        redis.exceptions.BusyLoadingError, DependencyUnavailable)):
        return True
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(_REDIS_STATE_ERRORS)


async def until_available(call: Callable[[], Awaitable[T]], what: str, first_delay: float = 0.2,
                          max_delay: float = 5.0) -> T:
    """Retry ``call`` while it fails for a dependency's state (:func:`is_transient`); raise the rest."""
    return await _retrying(call, what, is_transient, first_delay, max_delay)


async def until_done(call: Callable[[], Awaitable[T]], what: str, first_delay: float = 0.2,
                     max_delay: float = 5.0) -> T:
    """Retry ``call`` whatever fails: for a step whose input was already made safe (a batch whose
    bad records are dead-lettered one by one), what still fails is the system's, and the step must
    neither be skipped (its records would be acknowledged unprocessed) nor crash the process."""
    return await _retrying(call, what, lambda exc: True, first_delay, max_delay)


async def _retrying(call, what: str, retry_if: Callable[[Exception], bool], first_delay: float, max_delay: float):
    retrying = tenacity.AsyncRetrying(
        # never a BaseException: a cancelled task (shutdown) must end, not be retried
        retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, Exception) and retry_if(exc)),
        wait=tenacity.wait_exponential(multiplier=first_delay, min=first_delay, max=max_delay),
        before_sleep=lambda state: _log_retry(what, state),
        reraise=True,
    )  # no stop: the stream waits; cancellation (shutdown) ends the sleep at once
    async for attempt in retrying:
        with attempt:
            return await call()


def _log_retry(what: str, state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception()
    delay, attempt = state.next_action.sleep, state.attempt_number
    if is_transient(exc):
        kind = "redis" if isinstance(exc, redis.exceptions.RedisError) else "dependency"
        log.warning("%s: %s unavailable (attempt %d), retrying in %.1fs: %s", what, kind, attempt, delay, exc)
    else:
        log.error("%s failed (attempt %d), retrying in %.1fs: %s: %s", what, attempt, delay,
                  type(exc).__name__, exc, exc_info=exc if attempt == 1 else None)
