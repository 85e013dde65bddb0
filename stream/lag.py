"""A consumer group's lag and members, read from outside the group (``babelwatch status``).

End offsets come from fetch high-waters, not ListOffsets(LATEST), which Tansu answers short
(shared NOTES): a reader with no group fetches once from each partition's committed offset, and
every fetch answer carries the partition's high-water. Lag = high-water - committed (0 committed:
the group never committed there, so everything is behind). docs/design.md "Observability"."""
from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.settings import Settings
from stream import clients


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here
    end: int | None  # None: no fetch answer in time
    lag: int | None

    def as_dict(self) -> dict:
        return asdict(self)


async def group_lag(settings: Settings, topic: str, group: str, timeout_s: float = 5.0) -> list[PartitionLag]:
    member = clients.async_consumer(settings, group=group)  # started, never subscribed: does not join
    reader = clients.async_consumer(settings, fetch_max_wait_ms=100)
    await member.start()
    try:
        await reader.start()
        try:
            parts = sorted(await _partitions(reader, topic, timeout_s))
            tps = [TopicPartition(topic, p) for p in parts]
            committed = {tp: await member.committed(tp) for tp in tps}
            ends = await _high_waters(reader, tps, committed, timeout_s)
        finally:
            await reader.stop()
    finally:
        await member.stop()
    out = []
    for tp in tps:
        c, e = committed[tp], ends.get(tp)
        out.append(PartitionLag(topic, tp.partition, c, e, None if e is None else max(0, e - (c or 0))))
    return out


async def _partitions(reader, topic: str, timeout_s: float) -> set[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        await reader.topics()  # refreshes metadata
        parts = reader.partitions_for_topic(topic)
        if parts or time.monotonic() > deadline:
            return set(parts or ())
        await asyncio.sleep(0.2)


async def _high_waters(reader, tps: list[TopicPartition], committed: dict, timeout_s: float) -> dict:
    if not tps:
        return {}
    reader.assign(tps)
    for tp in tps:
        reader.seek(tp, committed.get(tp) or 0)
    ends: dict[TopicPartition, int] = {}
    deadline = time.monotonic() + timeout_s
    while len(ends) < len(tps) and time.monotonic() < deadline:
        await reader.getmany(timeout_ms=300, max_records=1)
        for tp in tps:
            hw = reader.highwater(tp)
            if hw is not None:
                ends[tp] = hw
    return ends


async def group_members(settings: Settings, group: str) -> dict:
    """{"state": ..., "members": [{"member_id", "client_id", "host"}]} (DescribeGroups)."""
    admin = AIOKafkaAdminClient(**clients.client_kwargs(settings))  # connects like every client here
    await admin.start()
    try:
        [resp] = await admin.describe_consumer_groups([group])
        [g] = resp.groups
        fields = g if isinstance(g, tuple) else tuple(g)
        # (error_code, group, state, protocol_type, protocol, members)
        state, members = fields[2], fields[5]
        return {"state": state, "members": [{"member_id": m[0], "client_id": m[1], "host": m[2]} for m in members]}
    finally:
        await admin.close()
