"""workers.isolation.bisect: culprits found alone, the rest run in order, transient errors raised."""
from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from workers.isolation import bisect
from workers.retry import DependencyUnavailable


def run(coro):
    return asyncio.run(coro)


def test_a_clean_batch_is_one_call():
    calls = []

    async def call(chunk):
        calls.append(list(chunk))
        return sum(chunk)

    results, failures = run(bisect(list(range(10)), call))
    assert results == [45] and failures == [] and len(calls) == 1


@pytest.mark.parametrize("bad", [{0}, {255}, {7, 8}, {3, 100, 200}, set(range(0, 256, 2))])
def test_culprits_fail_alone_and_every_other_item_runs_once_in_order(bad):
    seen = []

    async def call(chunk):
        if bad & set(chunk):
            raise ValueError(f"bad {sorted(bad & set(chunk))}")
        seen.extend(chunk)
        return list(chunk)

    items = list(range(256))
    results, failures = run(bisect(items, call))
    assert [i for i, _ in failures] == sorted(bad)
    assert all(isinstance(e, ValueError) for _, e in failures)
    assert seen == [i for i in items if i not in bad]  # each good item once, offsets in order
    assert [i for r in results for i in r] == seen


def test_one_culprit_in_256_costs_about_2_log2_n_calls():
    calls = 0

    async def call(chunk):
        nonlocal calls
        calls += 1
        if 77 in chunk:
            raise RuntimeError("x")
        return None

    run(bisect(list(range(256)), call))
    assert calls <= 2 * 8 + 1


@pytest.mark.parametrize("exc", [redis.exceptions.ConnectionError("down"), DependencyUnavailable("triton"),
                                 redis.exceptions.ResponseError("OOM command not allowed when used memory > 'maxmemory'")])
def test_transient_errors_blame_no_item(exc):
    async def call(chunk):
        raise exc

    with pytest.raises(type(exc)):
        run(bisect([1, 2, 3], call))


def test_cancellation_is_not_swallowed():
    async def call(chunk):
        raise asyncio.CancelledError()

    with pytest.raises(asyncio.CancelledError):
        run(bisect([1, 2], call))
