"""The batch source: the hot topic read in bulk by an aiokafka group member that a ``mode.Service``
(started with the Faust app) owns, each fetch handed whole to an agent-shaped function
``async def process(batch: list[RawRecord])``. Faust's per-record machinery costs ~250 µs of CPU
per event here (shared NOTES, bench/RESULTS.md); this path pays per batch.

Guarantees (docs/design.md): at-least-once (a batch's offsets are committed only after ``process``
returned, i.e. after its outputs were acknowledged by the broker); strict per-partition order (one
batch at a time: the Redis sink's offset ledger skips offsets at or below a high-water mark, so an
out-of-order batch would be lost silently); a rebalance finishes the batch in flight, or abandons it
(not committed = delivered again; every sink is idempotent) before partitions move.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Iterable, Sequence

import mode
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from contracts.settings import Settings
from stream import clients
from workers.pipeline import BatchResult, RawRecord
from workers.retry import until_done
from workers.validate import Origin

log = logging.getLogger("babelwatch.batches")

Process = Callable[[list[RawRecord]], Awaitable["BatchResult | None"]]
Observer = Callable[["BatchResult | None", int, float], None]
PRODUCE_BATCH_BYTES = 16 * 1024


class BatchSource(mode.Service):
    """One consumer-group member on ``topic``; ``process`` receives one batch per fetch.

    For observers (metrics, health): :attr:`observers` are called after each finished batch (outputs
    acknowledged, offsets committed or due in the next commit, at most ``commit_interval_s`` later)
    with (result, records, seconds), :meth:`lag`, :meth:`assigned`, :attr:`last_batch_done_at`
    (``time.monotonic()``; None before the first batch)."""

    def __init__(self, settings: Settings, topic: str, process: Process, *, group: str,
                 batch_size: int, batch_wait_s: float, legacy_group: str | None = None,
                 before_start: Callable[[], Awaitable[None]] | None = None,
                 on_assigned: Callable[[set[TopicPartition]], Awaitable[None]] | None = None,
                 revoke_grace_s: float = 5.0, stop_grace_s: float = 2.0, **service_kwargs: Any) -> None:
        super().__init__(**service_kwargs)
        self.settings = settings
        self.topic = topic
        self.process = process
        self.group = group
        self.batch_size = batch_size
        self.batch_wait_ms = max(1, int(batch_wait_s * 1000))
        self.legacy_group = legacy_group  # whose committed offsets a partition new to `group` starts from
        self.before_start = before_start
        self.on_assigned_hook = on_assigned
        # below the group's rebalance timeout (10 s, clients.MEMBER): a member that keeps its
        # partitions longer is thrown out of the group
        self.revoke_grace_s = revoke_grace_s
        self.stop_grace_s = stop_grace_s  # SIGTERM: how long a batch in flight may still finish
        self.observers: list[Observer] = []
        self.last_batch_done_at: float | None = None
        self.batches = 0
        # aiokafka clients bind the running loop when built: made in on_start
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.sender: GroupedSender | None = None
        # offsets are committed every commit_interval_s (as Faust did), always only up to batches
        # whose outputs the broker acknowledged; a rebalance and a stop commit first
        self.commit_interval_s = settings.commit_interval_s
        self._pending: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self._committed: dict[TopicPartition, int] = {}
        # where a partition with no commit yet was first read from: its lag's base (0 would count
        # records that retention already deleted, a lag that never drains: a false "stalled")
        self._first_fetched: dict[TopicPartition, int] = {}
        self._legacy: dict[TopicPartition, int | None] = {}  # the legacy group's commits (None: none)
        self._step: asyncio.Future | None = None
        self._revoking = False
        self._loop_task: asyncio.Future | None = None

    # ------------------------------------------------------------------------------ observation
    def assigned(self) -> set[TopicPartition]:
        return set(self.consumer.assignment()) if self.consumer is not None else set()

    def lag(self) -> dict[tuple[str, int], int]:
        """Per assigned partition: the fetch high-water aiokafka last saw minus the committed offset
        (Tansu's ListOffsets(LATEST) is unreliable, shared NOTES). Partitions not fetched yet are
        left out, and so are partitions with no commit that nothing was read from yet."""
        out = {}
        for tp in self.assigned():
            hw = self.consumer.highwater(tp)
            if hw is None:
                continue
            base = self._committed.get(tp, self._first_fetched.get(tp))
            if base is None:  # no commit and nothing read yet: unknown, not blamed
                continue
            out[(tp.topic, tp.partition)] = max(0, hw - base)
        return out

    # -------------------------------------------------------------------------------- lifecycle
    async def on_start(self) -> None:
        s = self.settings
        # Tansu holds a fetch for its whole max wait even when records arrive meanwhile (shared
        # NOTES): the fetch waits no longer than a batch may wait to fill, nor than the consumers'
        # configured wait (latency: bench/RESULTS.md)
        wait_ms = min(s.consumer_fetch_max_wait_ms, self.batch_wait_ms)
        self.consumer = clients.async_consumer(s, group=self.group, fetch_max_wait_ms=wait_ms)
        # big produce batches: a fetched batch's outputs leave as one request per partition
        self.producer = clients.async_producer(s, max_batch_size=PRODUCE_BATCH_BYTES)
        self.sender = GroupedSender(self.producer)
        await self.producer.start()
        await self.consumer.start()
        self._loop_task = self.add_future(self._run())

    async def on_stop(self) -> None:
        step = self._step
        if step is not None and not step.done():
            # a batch stuck retrying a down dependency must not hold SIGTERM off: abandoned, it is
            # not committed and is delivered again (idempotent sinks)
            done, _ = await asyncio.wait({step}, timeout=self.stop_grace_s)
            if not done:
                log.info("shutdown: the batch in flight is abandoned (delivered again)")
                step.cancel()
                await asyncio.wait({step})
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.wait({self._loop_task})
        if self.consumer is not None:
            await self._commit()
        if self.consumer is not None:
            await self.consumer.stop()  # leaves the group: its partitions move at once
        if self.producer is not None:
            await self.producer.stop()

    async def _run(self) -> None:
        if self.before_start is not None:
            await self.before_start()
        self.consumer.subscribe([self.topic], listener=clients.Rebalance(self._on_assigned, self._on_revoked))
        while not self.should_stop:
            fetched = await self.consumer.getmany(timeout_ms=self.batch_wait_ms, max_records=self.batch_size)
            if not fetched or self._revoking:
                # records of a rebalance under way are fetched again from the commit
                if self._pending and time.monotonic() - self._last_commit >= self.commit_interval_s:
                    await self._commit()
                continue
            batch: list[RawRecord] = []
            ends: dict[TopicPartition, int] = {}
            for tp, msgs in fetched.items():
                topic, partition = tp.topic, tp.partition
                batch += [RawRecord(m.value or b"", Origin(topic, partition, m.offset)) for m in msgs]
                if tp not in self._committed:
                    self._first_fetched.setdefault(tp, msgs[0].offset)
                ends[tp] = msgs[-1].offset + 1
            # no await between the fetch and this: a revoke always sees the batch it must settle
            self._step = asyncio.ensure_future(self._handle(batch, ends))
            try:
                await asyncio.wait({self._step})
            finally:
                self._step = None

    async def _handle(self, batch: list[RawRecord], ends: dict[TopicPartition, int]) -> None:
        t0 = time.perf_counter()
        # bad records are dead-lettered one by one inside `process`; what still fails is the
        # system's, so the batch waits and is retried whole: never committed unprocessed
        result = await until_done(lambda: self.process(batch), "process batch")
        self._pending.update(ends)  # its outputs are acknowledged: its offsets may be committed
        if time.monotonic() - self._last_commit >= self.commit_interval_s:
            await self._commit()
        self.batches += 1
        self.last_batch_done_at = time.monotonic()
        took = time.perf_counter() - t0
        for observe in self.observers:
            try:
                observe(result, len(batch), took)
            except Exception:  # an observer's bug must not stop the stream
                log.exception("batch observer %r failed", observe)

    async def _commit(self) -> None:
        """Commit what finished batches reached. Never raises: what is not committed is delivered
        again (idempotent sinks), e.g. when a rebalance took the partitions meanwhile."""
        self._last_commit = time.monotonic()
        if not self._pending:
            return
        offsets, self._pending = self._pending, {}
        try:
            await self.consumer.commit(offsets)
            self._committed.update(offsets)
        except Exception as exc:
            log.warning("offset commit failed (those records will be delivered again): %s", exc)

    # -------------------------------------------------------------------------------- rebalance
    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        self._revoking = True
        step = self._step
        if step is not None and not step.done():
            done, _ = await asyncio.wait({step}, timeout=self.revoke_grace_s)
            if not done:
                log.warning("rebalance: the batch in flight is abandoned (delivered again)")
                step.cancel()
                await asyncio.wait({step})
        await self._commit()  # the group is still ours until the join: what finished counts
        for tp in revoked:
            self._committed.pop(tp, None)
            self._first_fetched.pop(tp, None)

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        # A revoke is always followed by an assignment, whose fresh positions (from the commits)
        # re-read what the loop dropped meanwhile. From here on nothing may be dropped: fetching
        # waits (paused) until each partition's start is known (a lookup of the legacy group's
        # commits takes seconds; records fetched meanwhile would come from the wrong offset).
        self._revoking = False
        if assigned:
            self.consumer.pause(*assigned)
        try:
            await self._start_positions(assigned)
            if self.on_assigned_hook is not None:
                await self.on_assigned_hook(assigned)
        finally:
            if assigned:
                self.consumer.resume(*assigned)
        # launchers wait for this line: an open port or a started process is not readiness
        log.info("partitions assigned: %d", len(assigned))

    async def _start_positions(self, assigned: Iterable[TopicPartition]) -> None:
        """Where each partition starts: this group's commit, else the legacy group's (the Faust
        app's, which consumed this topic before the batch source existed), else the beginning."""
        fresh = []
        for tp in assigned:
            committed = await self.consumer.committed(tp)
            if committed is not None:
                self._committed[tp] = committed
            else:
                fresh.append(tp)
        if fresh:
            await self._log_starts(fresh)
        if not fresh or not self.legacy_group:
            return
        # asked once per partition and process: the legacy group no longer commits, and a lookup
        # costs seconds of paused partitions in every rebalance until this group has committed
        unknown = [tp for tp in fresh if tp not in self._legacy]
        if unknown:
            try:
                found = await legacy_offsets(self.settings, self.legacy_group, unknown)
            except Exception as exc:  # from the beginning then: every sink is idempotent
                log.warning("committed offsets of group %s not read: %s", self.legacy_group, exc)
                found = None
            if found is not None:
                self._legacy.update({tp: found.get(tp) for tp in unknown})
        for tp in fresh:
            offset = self._legacy.get(tp)
            if offset is not None:
                log.info("%s starts at offset %d, committed by group %s", tp, offset, self.legacy_group)
                self.consumer.seek(tp, offset)
                self._committed[tp] = offset


    async def _log_starts(self, tps: list[TopicPartition]) -> None:
        """Where uncommitted partitions begin (their lag's base until the first commit): the log
        start, not 0, so records that retention deleted do not count as a lag that never drains."""
        try:
            starts = await self.consumer.beginning_offsets(tps)
        except Exception as exc:  # the base is then the first offset read (see lag())
            log.warning("log start offsets not read: %s", exc)
            return
        for tp, offset in starts.items():
            self._first_fetched.setdefault(tp, offset)


async def legacy_offsets(settings: Settings, group: str, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
    """``group``'s committed offsets of ``tps`` (those it has), read by a member that never joins."""
    member = clients.async_consumer(settings, group=group)
    await member.start()
    try:
        got = {tp: await member.committed(tp) for tp in tps}
    finally:
        await member.stop()
    return {tp: offset for tp, offset in got.items() if offset is not None and offset >= 0}


class GroupedSender:
    """Sends a batch's records as one produce batch per partition (aiokafka ``send_batch``) and waits
    for the broker's acknowledgements. The partition of a keyed record is what ``send()`` would
    pick (aiokafka's default partitioner, murmur2 of the key), so keys keep their partitions."""

    def __init__(self, producer) -> None:
        self.producer = producer
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._by_key: dict[tuple[str, bytes], int] = {}

    async def send(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> None:
        """``records``: (topic, key, value); returns when every one is acknowledged."""
        groups: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
        for topic, key, value in records:
            parts = self._partitions.get(topic)
            if parts is None:
                parts = self._partitions[topic] = sorted(await self.producer.partitions_for(topic))
            if key is None:
                p = parts[0]
            else:
                p = self._by_key.get((topic, key))
                if p is None:
                    if len(self._by_key) > 100_000:
                        self._by_key.clear()
                    p = self._by_key[(topic, key)] = self._partitioner(key, parts, parts)
            groups.setdefault((topic, p), []).append((key, value))
        futures = []
        for (topic, p), items in groups.items():
            batch = self.producer.create_batch()
            for key, value in items:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full: send, start another
                    futures.append(await self.producer.send_batch(batch, topic, partition=p))
                    batch = self.producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"a record of {len(value)} bytes does not fit in a produce batch")
            if batch.record_count():
                futures.append(await self.producer.send_batch(batch, topic, partition=p))
        if futures:
            await asyncio.gather(*futures)
