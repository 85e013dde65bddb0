"""OffsetTracker: the commit offset only passes records whose work has all ended, whatever order
they end in; and the router's hand-off of record holds (ingest -> group -> notification)."""
from __future__ import annotations

from workers.alerting.model import AlertInstance, Route
from workers.alerting.offsets import OffsetTracker
from workers.alerting.routing import Router

TP, TP2 = ("alerts", 0), ("alerts", 1)


def test_commit_waits_for_the_lowest_unfinished_record():
    t = OffsetTracker()
    recs = [t.add(TP, off) for off in range(10, 15)]
    assert t.committable() == {}
    for r in (recs[1], recs[3], recs[4]):  # finished out of order
        r.release()
    assert t.committable() == {}  # offset 10 is still in flight
    recs[0].release()
    assert t.committable() == {TP: 12}  # 10 and 11 done; 12 holds the rest back
    t.committed({TP: 12})
    assert t.committable() == {}  # nothing new since the last commit
    recs[2].release()
    assert t.committable() == {TP: 15}
    assert t.outstanding() == 0


def test_a_record_with_several_deliveries_is_done_after_the_last():
    t = OffsetTracker()
    r = t.add(TP, 0)
    r.hold()
    r.hold()  # two receivers
    r.release()  # the consumer's own hold
    r.release()
    assert t.committable() == {}
    r.release()
    assert t.committable() == {TP: 1}


def test_partitions_are_independent_and_forgotten_ones_ignore_late_completions():
    t = OffsetTracker()
    a, b = t.add(TP, 5), t.add(TP2, 7)
    b.release()
    assert t.committable() == {TP2: 8}
    t.committed({TP2: 8})
    t.forget([TP])
    a.release()
    assert t.committable() == {}
    t.add(TP, 5).release()  # consumed again after re-assignment: counts afresh
    assert t.committable() == {TP: 6}


def alert(state: str, topic: str = "TSLA") -> AlertInstance:
    return AlertInstance(labels={"topic": topic, "detector": "volume_spike"}, state=state, fired_at=1.0)


def route(**kw) -> Route:
    return Route(id="r", group_by=["topic"], group_wait=1, group_interval=5, repeat_interval=100,
                 receivers=[{"type": "sse", "name": "a"}, {"type": "sse", "name": "b"}], **kw)


def test_router_passes_holds_to_the_notification_and_releases_what_it_does_not_list():
    t = OffsetTracker()
    router = Router([route(matchers=["topic=TSLA"])])
    firing, other = t.add(TP, 0, "e0"), t.add(TP, 1, "e1")
    router.ingest([alert("firing"), alert("firing", "AAPL")], now=0.0, sources=[firing, other])
    for s in (firing, other):
        s.release()  # the consumer's hold
    assert t.committable() == {}  # 0 waits in its group, 1 waits behind it
    [group] = router.flush(now=1.0)
    assert group.event_ids == ["e0"] and t.committable() == {}  # 0 travels with the notification
    for s in group.sources:
        s.release()  # its delivery ended
    assert t.committable() == {TP: 2}  # 1 matched no route: done at once

    again = t.add(TP, 2, "e2")  # the same alert firing again: not news to the group
    router.ingest([alert("firing")], now=2.0, sources=[again])
    again.release()
    assert router.flush(now=6.0) == [] and t.committable() == {TP: 3}


def test_resolved_unknown_to_a_restarted_router_is_sent_as_unconfirmed():
    plain = Router([route()])
    plain.ingest([alert("resolved")], now=0.0)
    assert plain.flush(now=2.0) == []  # the default: nothing said here, nothing to resolve

    restarted = Router([route()], resolve_unconfirmed=True)
    restarted.ingest([alert("resolved")], now=0.0)
    [group] = restarted.flush(now=2.0)
    assert group.status == "resolved" and group.unconfirmed == [alert("resolved").fingerprint]

    known = Router([route()], resolve_unconfirmed=True)
    known.ingest([alert("firing")], now=0.0)
    known.flush(now=1.0)
    known.ingest([alert("resolved")], now=2.0)
    [group] = known.flush(now=6.0)
    assert group.status == "resolved" and group.unconfirmed == []


def test_revoke_commits_the_done_prefix_and_a_record_read_again_waits_for_its_first_copy():
    """What the notifier's revoke handler does (commit what is committable, then forget), and a
    record still in flight then read again when the partition comes back: dropped at once as a
    repeat, it must not let the commit pass while its first copy is still being delivered."""
    t = OffsetTracker()
    done, owed = t.add(TP, 0, "e0"), t.add(TP, 1, "e1")
    done.release()
    assert t.committable() == {TP: 1}  # the revoke handler commits this ...
    t.committed({TP: 1})
    t.forget([TP])  # ... and forgets the partition
    assert t.committable() == {} and t.outstanding() == 0

    again = t.add(TP, 1, "e1")  # assigned back: read from the committed offset
    again.release()  # a repeated id: nothing routed for it
    assert not again.done and t.committable() == {}  # the first copy still owes a delivery
    later = t.add(TP, 2, "e2")
    later.release()
    assert t.committable() == {}
    owed.release()  # the first copy's delivery ended (delivered, or given up to the failed topic)
    assert again.done and t.committable() == {TP: 3}


def test_a_record_finished_while_its_partition_was_away_does_not_wait_when_read_again():
    t = OffsetTracker()
    owed = t.add(TP, 4)
    t.forget([TP])
    owed.release()
    t.forget([TP2])  # another revoke: finished leftovers are let go
    t.forget([TP])
    assert t._orphans[TP] == {}
    t.add(TP, 4).release()
    assert t.committable() == {TP: 5}
