"""The dependency waits of workers.retry: what is retried, how the wait grows, and that a shutdown
(cancellation) ends the wait instead of being retried."""
from __future__ import annotations

import asyncio
import logging
import re

import pytest
import redis.exceptions

from workers.retry import DependencyUnavailable, is_transient, until_available, until_done


def flaky(failures: list[Exception], result="ok"):
    calls = []

    async def call():
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return result
    return call, calls


async def test_until_available_waits_out_redis_and_returns():
    call, calls = flaky([redis.exceptions.ConnectionError("down"), DependencyUnavailable("triton")])
    assert await until_available(call, "t", first_delay=0.001, max_delay=0.002) == "ok"
    assert len(calls) == 3


async def test_until_available_raises_what_the_batch_caused():
    call, calls = flaky([ValueError("the record's fault")])
    with pytest.raises(ValueError):
        await until_available(call, "t", first_delay=0.001)
    assert len(calls) == 1


async def test_until_done_retries_anything_with_doubling_capped_waits(caplog):
    call, calls = flaky([RuntimeError(str(i)) for i in range(5)])
    with caplog.at_level(logging.WARNING, logger="babelwatch.retry"):
        assert await until_done(call, "t", first_delay=0.001, max_delay=0.004) == "ok"
    waits = [float(m) for m in re.findall(r"retrying in ([0-9.]+)s", caplog.text)]
    assert len(calls) == 6 and len(waits) == 5
    assert waits == sorted(waits) and waits[-1] <= 0.004 + 1e-9  # logged rounded to 0.1 s: monotone, capped


async def test_cancellation_ends_the_wait_and_is_never_retried():
    call, calls = flaky([RuntimeError("x")] * 1000)
    task = asyncio.create_task(until_done(call, "t", first_delay=0.01, max_delay=0.01))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)
    n = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == n  # nothing runs after the cancel


async def test_cancellation_inside_the_call_propagates():
    started = asyncio.Event()

    async def slow():
        started.set()
        await asyncio.sleep(10)
    task = asyncio.create_task(until_done(slow, "t"))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)


def test_redis_state_errors_are_transient_other_responses_not():
    assert is_transient(redis.exceptions.ResponseError("LOADING Redis is loading"))
    assert is_transient(redis.exceptions.ResponseError("OOM command not allowed"))
    assert not is_transient(redis.exceptions.ResponseError("ERR wrong number of arguments"))
    assert not is_transient(ValueError("x"))
