"""workers/health.py: each readiness and liveness state, the stalled one included."""
from __future__ import annotations

from workers.health import Health


def make(stall: float = 30.0):
    now = [1000.0]
    return Health(stall, clock=lambda: now[0]), now


def test_not_ready_until_joined_and_checked() -> None:
    h, _ = make()
    assert h.readiness(joined=False).reason == "not_joined"
    assert h.readiness(joined=True).reason == "not_checked"
    h.dependency("redis", True)
    h.dependency("triton", True)
    p = h.readiness(joined=True)
    assert p.ok and p.body()["dependencies"] == {"redis": "up", "triton": "up"}


def test_a_dependency_down_makes_unready_not_dead() -> None:
    h, now = make()
    h.dependency("redis", True)
    h.dependency("triton", False)
    p = h.readiness(joined=True)
    assert not p.ok and p.reason == "dependency_down:triton" and p.body()["status"] == "fail"
    now[0] += 10  # briefly down, work waiting: still alive
    assert h.liveness(lag=100, last_progress_at=995.0).ok


def test_stalled_only_when_work_waits_and_nothing_finished() -> None:
    h, now = make(stall=30.0)
    now[0] += 31
    assert h.liveness(lag=0, last_progress_at=None).ok  # idle, nothing to do: alive
    assert h.liveness(lag=None, last_progress_at=None).ok  # lag unknown: not blamed
    p = h.liveness(lag=5, last_progress_at=None)  # never finished a batch since start, work waits
    assert not p.ok and p.reason == "stalled" and p.detail["lag"] == 5
    assert h.liveness(lag=5, last_progress_at=now[0] - 1).ok  # a batch just finished
    assert not h.liveness(lag=5, last_progress_at=now[0] - 30.5).ok
