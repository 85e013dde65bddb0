"""One topic's active stories and the choice of story per event (``TopicBook``). The in-memory
store runs it as it is; the Redis store runs it as the worker's plan and its script (stories.lua)
applies the same rules atomically. Rules and guarantees: docs/design.md, "Stories"."""
from __future__ import annotations

import heapq
import math

import numpy as np

from workers.stories.items import StoryItem, story_id
from workers.stories.record import Story, join
from workers.stories.rules import StoryRules

_blas = None


def one_blas_thread():
    """A context with one BLAS thread: OpenBLAS's pool spins on these small products, which cost
    the worker about twice the CPU they need (measured; the controller is built once, ~8 us a use)."""
    global _blas
    if _blas is None:
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas")



class TopicBook:
    """One topic's active stories: unit centroids in one matrix, so a batch's nearest stories are
    one matrix product; a heap of last event times finds the quiet ones without a scan."""

    def __init__(self, topic: str, rules: StoryRules) -> None:
        self.topic = topic
        self.rules = rules
        self.now = -math.inf  # newest event time seen (clamped to the wall clock by the caller)
        self.stories: dict[str, Story] = {}
        self.sums: dict[str, np.ndarray] = {}
        self.norms: dict[str, float] = {}  # |sum| per story
        self.reps: dict[tuple[str, str], np.ndarray] = {}  # (story, lang) -> its representative's vector
        self._ids: list[str] = []
        self._row: dict[str, int] = {}
        self._units = np.zeros((16, rules.dim), dtype=np.float32)
        self._quiet: list[tuple[float, str]] = []  # (last_ts, id), stale entries skipped when popped

    # --- the centroid matrix ---------------------------------------------------------------
    def set_sum(self, sid: str, s: np.ndarray) -> None:
        self.sums[sid] = s
        row = self._row.get(sid)
        if row is None:
            row = len(self._ids)
            if row == len(self._units):
                self._units = np.concatenate([self._units, np.zeros_like(self._units)])
            self._ids.append(sid)
            self._row[sid] = row
        norm = self.norms[sid] = math.sqrt(float(s @ s))
        self._units[row] = s / norm if norm > 0 else 0.0

    def touch(self, story: Story) -> None:
        """Record the story's last event time for expiry and eviction."""
        heapq.heappush(self._quiet, (story.last_ts, story.id))
        if len(self._quiet) > 4 * len(self.stories) + 64:  # drop the stale entries now and then
            self._quiet = [(st.last_ts, sid) for sid, st in self.stories.items()]
            heapq.heapify(self._quiet)

    def remove(self, sid: str) -> None:
        story = self.stories.pop(sid, None)
        for lang in (story.langs if story is not None else ()):
            self.reps.pop((sid, lang), None)
        self.sums.pop(sid, None)
        self.norms.pop(sid, None)
        row = self._row.pop(sid, None)
        if row is None:
            return
        last = len(self._ids) - 1
        if row != last:  # move the last row into the hole
            moved = self._ids[last]
            self._ids[row] = moved
            self._row[moved] = row
            self._units[row] = self._units[last]
        self._ids.pop()

    def cosine(self, x: np.ndarray, sid: str) -> float:
        norm = self.norms[sid]
        return float(x @ self.sums[sid]) / norm if norm > 0 else -2.0

    # --- the rules -------------------------------------------------------------------------
    def _pop_quiet(self, horizon: float | None, keep: str | None = None) -> str | None:
        """The id of the story with the oldest last event (lowest id on ties), when older than
        ``horizon`` (None: any), never ``keep``; removed from the heap."""
        held = []
        found = None
        while self._quiet:
            ts, sid = self._quiet[0]
            st = self.stories.get(sid)
            if st is None or st.last_ts != ts:
                heapq.heappop(self._quiet)  # stale
                continue
            if horizon is not None and ts >= horizon:
                break
            heapq.heappop(self._quiet)
            if sid == keep:
                held.append((ts, sid))
                continue
            found = sid
            break
        for entry in held:
            heapq.heappush(self._quiet, entry)
        return found

    def expire(self) -> list[str]:
        """End the stories quiet for longer than ``quiet_s`` of event time."""
        horizon = self.now - self.rules.quiet_s
        gone = []
        while (sid := self._pop_quiet(horizon)) is not None:
            self.remove(sid)
            gone.append(sid)
        return gone

    def evict(self, keep: str) -> list[str]:
        """Beyond ``max_active``: end the longest-quiet stories (never ``keep``)."""
        gone = []
        while len(self.stories) > self.rules.max_active and (sid := self._pop_quiet(None, keep)) is not None:
            self.remove(sid)
            gone.append(sid)
        return gone

    def assign(self, item: StoryItem, x: np.ndarray, ts: float) -> tuple[str, str | None, list[str]]:
        """One event: see :meth:`assign_batch`."""
        return self.assign_batch([(item, x, ts)])[0]

    def assign_batch(self, rows: list[tuple[StoryItem, np.ndarray, float]]) -> list[tuple[str, str | None, list[str]]]:
        """Each row (item, its centered unit vector, its event time) in order: into the nearest
        story at or above the threshold, else a new one. Returns (story id, runner-up id, ended ids)
        per row. The batch-start centroids are scored in one product; stories the batch changes are
        scored again as they change, and the two best candidates exactly (float64)."""
        with one_blas_thread():
            return self._assign_batch(rows)

    def _assign_batch(self, rows: list[tuple[StoryItem, np.ndarray, float]]) -> list[tuple[str, str | None, list[str]]]:
        n = len(self._ids)
        start_ids = self._ids[:n]
        # [n, batch]; a batch-start row changed or ended since is set to -inf (scored elsewhere)
        xs32 = np.stack([x for _, x, _ in rows]).astype(np.float32)
        pre = self._units[:n] @ xs32.T if n else None
        start_row = dict(zip(start_ids, range(n)))
        k = min(2, n)
        changed: dict[str, None] = {}  # stories this batch changed, in order
        out = []
        for b, (item, x, ts) in enumerate(rows):
            self.now = max(self.now, ts)
            ended = self.expire()
            for sid in ended:
                if sid in start_row:
                    pre[start_row[sid]] = -np.inf
                changed.pop(sid, None)
            cands = []
            if n:
                col = pre[:, b]
                for i in (np.argpartition(col, n - k)[n - k:] if n > k else range(n)):
                    if col[i] > -np.inf:
                        cands.append(start_ids[i])
            if changed:
                ids = list(changed)
                sims = self._units[[self._row[sid] for sid in ids]] @ xs32[b]
                cands += [ids[i] for i in np.argsort(-sims)[:2]]
            near = sorted(((sid, self.cosine(x, sid)) for sid in set(cands)), key=lambda p: (-p[1], p[0]))
            if near and near[0][1] >= self.rules.threshold:
                sid, runner = near[0][0], (near[1][0] if len(near) > 1 else None)
            else:
                sid, runner = story_id(self.topic, item.event_id), (near[0][0] if near else None)
            story = self.stories.get(sid)
            if story is None:
                story = self.stories[sid] = Story(sid, self.topic, ts, ts, rate_ts=ts)
            s = self.sums.get(sid)
            s = x.copy() if s is None else s + x
            self.set_sum(sid, s)
            norm = self.norms[sid]
            rep = self.reps.get((sid, item.lang))
            rep_sim = float(rep @ s) / norm if rep is not None else -2.0
            if join(story, item, ts, float(x @ s) / norm, rep_sim, self.rules):
                self.reps[(sid, item.lang)] = x
            self.touch(story)
            if sid in start_row:
                pre[start_row[sid]] = -np.inf
            changed[sid] = None
            evicted = self.evict(keep=sid)
            for e in evicted:
                if e in start_row:
                    pre[start_row[e]] = -np.inf
                changed.pop(e, None)
            out.append((sid, runner, ended + evicted))
        return out

    def nearest(self, x: np.ndarray, k: int = 2) -> list[tuple[str, float]]:
        """The ``k`` stories with the highest cosine to ``x``, best first (float32 ranking, exact cosines)."""
        n = len(self._ids)
        if n == 0:
            return []
        sims = self._units[:n] @ x.astype(np.float32)
        top = np.argpartition(-sims, k)[:k] if n > k else range(n)
        return sorted(((self._ids[i], self.cosine(x, self._ids[i])) for i in top), key=lambda p: (-p[1], p[0]))
