"""Which consumed offsets are safe to commit: those whose every delivery has finished.

A consumed record gives rise to zero or more deliveries (one per receiver of each group
notification it feeds), and one group notification can cover several records, so records finish
out of order. Each record gets a :class:`Pending` with a hold count: whoever takes a share of the
record's work calls ``hold()`` and ``release()`` when that share is finished; the consumer's own
hold (the one it starts with) is released once routing is over. At zero holds the record is done.

:class:`OffsetTracker` answers the commit question per partition: the highest offset at or below
which every record is done; Kafka's commit is that offset + 1 (the next record to read).

A partition taken away (rebalance) is forgotten, but its records still in flight are not: when the
partition comes back and such a record is consumed again (from the committed offset), the new copy
is done only once the first copy's deliveries have ended too. The notifier drops the new copy as a
repeat of an id it routed, so without this its commit would pass a record still being delivered.
"""
from __future__ import annotations

from typing import Hashable, Iterable


class Pending:
    """One consumed record's outstanding work (a hold count); done at zero holds."""

    __slots__ = ("event_id", "_holds", "after")

    def __init__(self, event_id: str = "", after: "Pending | None" = None) -> None:
        self.event_id = event_id
        self._holds = 1
        self.after = after  # an earlier copy of the same record (consumed before a rebalance)

    @property
    def done(self) -> bool:
        return self._holds <= 0 and (self.after is None or self.after.done)

    def hold(self) -> None:
        self._holds += 1

    def release(self) -> None:
        self._holds -= 1


class OffsetTracker:
    """Per partition, the consumed records in offset order and how far they are done."""

    def __init__(self) -> None:
        # per partition, offset -> Pending in consumption (= offset) order
        self._open: dict[Hashable, dict[int, Pending]] = {}
        self._next: dict[Hashable, int] = {}  # commit offset reached, not yet handed out
        self._committed: dict[Hashable, int] = {}
        # per forgotten partition, offset -> Pending of records still in flight when it was forgotten
        self._orphans: dict[Hashable, dict[int, Pending]] = {}

    def add(self, tp: Hashable, offset: int, event_id: str = "") -> Pending:
        """Register a consumed record; it starts with one hold (the consumer's)."""
        p = Pending(event_id, after=self._orphans.get(tp, {}).pop(offset, None))
        self._open.setdefault(tp, {})[offset] = p
        return p

    def committable(self) -> dict[Hashable, int]:
        """Per partition whose commit offset moved since the last call: that offset (last done + 1)."""
        out: dict[Hashable, int] = {}
        for tp, records in self._open.items():
            while records:
                offset, first = next(iter(records.items()))
                if not first.done:
                    break
                del records[offset]
                self._next[tp] = offset + 1
            nxt = self._next.get(tp)
            if nxt is not None and nxt != self._committed.get(tp):
                out[tp] = nxt
        return out

    def committed(self, offsets: dict[Hashable, int]) -> None:
        """Note that ``offsets`` (from :meth:`committable`) reached the broker."""
        self._committed.update(offsets)

    def forget(self, tps: Iterable[Hashable]) -> None:
        """Partitions taken away: no longer committable here; records still in flight are kept
        aside, and hold back the same record if it is consumed again (module doc)."""
        for tp in tps:
            orphans = self._orphans.setdefault(tp, {})
            orphans.update((off, p) for off, p in self._open.pop(tp, {}).items() if not p.done)
            for off in [off for off, p in orphans.items() if p.done]:
                del orphans[off]
            self._next.pop(tp, None)
            self._committed.pop(tp, None)

    def outstanding(self) -> int:
        return sum(1 for records in self._open.values() for p in records.values() if not p.done)
