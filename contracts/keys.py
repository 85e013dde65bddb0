"""Every Redis key name of babelwatch, built from the key prefix (``BABELWATCH_REDIS_PREFIX``).

Writers, readers (API, demo, detectors, notifier) and the Lua scripts take their keys from here.
Scripts get fixed keys as ``KEYS``; keys that only the script can know (one per event and window,
or read from another key) come as :meth:`RedisKeys.pieces`, so no layout is spelled out in Lua.

Redis Cluster (issue 15): every key that belongs to one topic takes the topic as an argument, so
hash tags (``{topic}``) can be added here alone; the shared ones (offsets, watermarks, stats,
outboxes, the topics index) would then be split per topic or partition.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

_HOLE = "\0"  # marks where an argument goes in pieces(): absent from the prefix (checked) and the layouts


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "bw"

    def __post_init__(self) -> None:
        if _HOLE in self.prefix:
            raise ValueError("the Redis key prefix must not contain NUL characters")

    # --- event-time windows (workers/windows.py, windows.lua) ---------------------------------

    def window(self, shape: str, topic: str, lang: str, start: int | str) -> str:
        """One window's hash; ``shape`` is ``WindowSpec.name`` (``"60"``, ``"300/60"``)."""
        return f"{self.prefix}:w:{shape}:{topic}:{lang}:{start}"

    @property
    def topics(self) -> str:
        """Set of the topics that have windows."""
        return f"{self.prefix}:topics"

    def langs(self, topic: str) -> str:
        """Set of a topic's languages (``*`` included)."""
        return f"{self.prefix}:langs:{topic}"

    @property
    def watermarks(self) -> str:
        """Hash topic -> newest event time applied."""
        return f"{self.prefix}:wm"

    @property
    def offsets(self) -> str:
        """The offset ledger: hash source (``topic#id:partition``) -> last offset applied."""
        return f"{self.prefix}:offsets"

    @property
    def topic_ids(self) -> str:
        """Hash Kafka topic -> topic id (its lifetime, workers/lifetimes.py)."""
        return f"{self.prefix}:topic_ids"

    @property
    def stats(self) -> str:
        """Hash of counters (late, redelivered_skipped, closed_dropped, topic_lifetime_changes)."""
        return f"{self.prefix}:stats"

    @property
    def closed_outbox(self) -> str:
        """List of closed windows (``ClosedWindow`` JSON) waiting for the closed-windows topic."""
        return f"{self.prefix}:closed:outbox"

    def detector(self, shape: str, topic: str, lang: str) -> str:
        """The detectors' state of one closed-window series (JSON)."""
        return f"{self.prefix}:det:{shape}:{topic}:{lang}"

    # --- alerts (workers/alerting/state_store.py, workers/alerts.py) --------------------------

    def alert(self, fingerprint: str) -> str:
        """One alert's versioned lifecycle record (hash)."""
        return f"{self.prefix}:alert:{fingerprint}"

    @property
    def alerts_live(self) -> str:
        """Sorted set of the pending/firing fingerprints by last activity."""
        return f"{self.prefix}:alerts:live"

    @property
    def alerts_outbox(self) -> str:
        """List of alert notifications (CloudEvent JSON) waiting for the alerts topic."""
        return f"{self.prefix}:alerts:outbox"

    @property
    def alerts_history(self) -> str:
        """List of notifications (AlertInstance JSON), newest first."""
        return f"{self.prefix}:alerts:history"

    # --- the notifier (workers/alerting/ledger.py, store.py) ----------------------------------

    def delivered(self, lane: str, event_id: str) -> str:
        """Marks that a receiver lane delivered a notification covering that alert event."""
        return f"{self.prefix}:alerts:delivered:{lane}:{event_id}"

    def notified(self, lane: str, fingerprint: str) -> str:
        """Marks that a receiver lane was last told that alert fires."""
        return f"{self.prefix}:alerts:notified:{lane}:{fingerprint}"

    @property
    def routes(self) -> str:
        """Hash route id -> subscription JSON."""
        return f"{self.prefix}:alerting:routes"

    @property
    def silences(self) -> str:
        """Hash silence id -> silence JSON."""
        return f"{self.prefix}:alerting:silences"

    @property
    def config_version(self) -> str:
        """Counter bumped with every change of routes or silences."""
        return f"{self.prefix}:alerting:version"

    # --- stories (workers/stories/, stories.lua; docs/design.md "Stories") --------------------
    # The ledger entries of stories live in ``offsets`` too, as ``<source>|stories|<topic>``: the
    # topic lifetime handling (workers/lifetimes.py) renames and drops them with the windows' entries.
    # One per partition AND topic: a topic's batch is applied by its own script call, so another
    # topic's events of the same partition (lower offsets, same batch) must not look redelivered.

    @staticmethod
    def story_source(source: str, topic: str) -> str:
        """The offset-ledger field of one topic's story assignments from one partition."""
        return f"{source}|stories|{topic}"

    @property
    def story_centers(self) -> str:
        """Hash language -> running sum of its embeddings (float32 bytes), ``<lang>#n`` -> count."""
        return f"{self.prefix}:st:centers"

    def story_index(self, topic: str) -> str:
        """Sorted set story id -> its last event time (active stories of a topic)."""
        return f"{self.prefix}:st:{topic}:index"

    def story_versions(self, topic: str) -> str:
        """Sorted set story id -> the topic version that last changed it (workers' caches sync by it)."""
        return f"{self.prefix}:st:{topic}:changed"

    def story_sums(self, topic: str) -> str:
        """Hash story id -> sum of its members' unit embeddings (float32 little-endian bytes)."""
        return f"{self.prefix}:st:{topic}:sums"

    def story_meta(self, topic: str) -> str:
        """Hash story id -> the story's JSON (times, counts and sentiment per language, representatives)."""
        return f"{self.prefix}:st:{topic}:meta"

    def story_state(self, topic: str) -> str:
        """Hash of a topic's story bookkeeping: ``version`` (bumped per applied batch), ``now``
        (newest event time seen)."""
        return f"{self.prefix}:st:{topic}:state"

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def lock(key: str) -> str:
        """The lock guarding ``key`` (an outbox's single drainer)."""
        return f"{key}:lock"

    @staticmethod
    def pieces(key: Callable[..., str]) -> list[str]:
        """A key method of an instance (``keys.window``) cut at its arguments, for a script that
        builds such keys itself: ``p[1] .. a1 .. p[2] .. a2 .. ... .. p[n+1]`` in Lua is the same
        key as ``key(a1, a2, ..., an)`` here."""
        n = key.__code__.co_argcount - 1  # minus self
        return key(*[_HOLE] * n).split(_HOLE)
