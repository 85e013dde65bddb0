"""``babelwatch bench stories``: story grouping quality on the labelled multilingual set, and its cost.

Quality: the set (fusion_model/corpora/stories.jsonl, or ``--set`` FILE of the same form: one JSON
object per line with id, ts, topic, lang, text, story label and optional link, in stream order; the
same events written in several languages plus unrelated events on the same topics) is embedded by the real model
in-process and assigned in order, as the stream would; printed: B-cubed precision/recall/F1, the
share of multi-language stories kept as one story spanning languages, a threshold sweep, and F1 on
each half of the stories with the threshold tuned on the other half (no tuning on what is scored).
Cost (``--cost``): worker CPU per event of ``RedisStories.assign`` against the real Redis, with
10/100/1000 active stories per topic. docs/design.md, "Stories".
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from workers.stories.rules import StoryRules
from workers.stories.items import StoryItem
from workers.stories.memory import InMemoryStories

GOAL_F1, GOAL_MERGE = 0.85, 0.9


def set_path() -> Path:
    import fusion_model

    return Path(fusion_model.__file__).resolve().parent / "corpora" / "stories.jsonl"


def load_set(path: Path | None = None) -> list[dict]:
    with open(path or set_path(), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


# --- metrics ---------------------------------------------------------------------------------

def bcubed(gold: Sequence, pred: Sequence) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 of a clustering ``pred`` against ``gold`` (one label per
    item; an item with pred None is its own cluster)."""
    if len(gold) != len(pred):
        raise ValueError("gold and pred differ in length")
    if not gold:
        return 1.0, 1.0, 1.0
    pred = [p if p is not None else ("\0single", i) for i, p in enumerate(pred)]
    pair = Counter(zip(gold, pred))
    g, p = Counter(gold), Counter(pred)
    precision = sum(pair[(a, b)] / p[b] for a, b in zip(gold, pred)) / len(gold)
    recall = sum(pair[(a, b)] / g[a] for a, b in zip(gold, pred)) / len(gold)
    return precision, recall, 2 * precision * recall / (precision + recall)


def cross_lingual_merge(gold: Sequence, pred: Sequence, langs: Sequence[str]) -> tuple[float, int]:
    """Of the gold stories written in more than one language: the share whose main predicted story
    (the one holding most of its events) holds it in more than one language and is mostly it.
    Returns (share, number of such stories)."""
    members: dict = defaultdict(list)
    for i, g in enumerate(gold):
        members[g].append(i)
    sizes = Counter(p for p in pred if p is not None)
    ok = n = 0
    for g, idx in members.items():
        if len({langs[i] for i in idx}) < 2:
            continue
        n += 1
        main = Counter(pred[i] for i in idx if pred[i] is not None).most_common(1)
        if not main:
            continue
        cluster, hits = main[0]
        spanned = {langs[i] for i in idx if pred[i] == cluster}
        ok += len(spanned) > 1 and hits * 2 > sizes[cluster]
    return (ok / n if n else 1.0), n


# --- running the set -------------------------------------------------------------------------

def embed(rows: list[dict], artifact: Path | None = None, batch: int = 32) -> list[tuple[np.ndarray | None, float]]:
    """(embedding, sentiment) per row from the real model, in-process."""
    from workers.scoring import ScoreInput
    from workers.scoring.inprocess import InProcessScorer

    if artifact is None:
        from contracts.settings import get_settings

        artifact = get_settings().triton_repo / "fusion" / "1" / "artifact"
    scorer = InProcessScorer(Path(artifact))
    out = []
    for i in range(0, len(rows), batch):
        chunk = rows[i:i + batch]
        scored = asyncio.run(scorer.score([ScoreInput(r["text"], None, r["lang"]) for r in chunk]))
        out += [(s.embedding, s.probabilities["positive"] - s.probabilities["negative"]) for s in scored]
    if all(e is None for e, _ in out):
        raise SystemExit(f"the model at {artifact} has no embedding output: run `babelwatch model build`")
    return out


def items_of(rows: list[dict], scored: list) -> list[StoryItem]:
    """Stream items in file order (a row without ``ts`` or ``id`` gets its line number)."""
    return [StoryItem(r["topic"], None, str(r.get("id", f"row-{i}")), r["lang"], r["text"], sent, emb,
                      float(r.get("ts", i)), r.get("link") or r.get("source", ""))
            for i, (r, (emb, sent)) in enumerate(zip(rows, scored))]


BATCH = 32  # events per assign call, as the stream's micro-batches hand them over


def assign(items: list[StoryItem], rules: StoryRules) -> list[str | None]:
    """Assign in stream order, batch by batch (event times are in the past: the clock does not cut them)."""
    store = InMemoryStories(rules)
    return [sid for i in range(0, len(items), BATCH) for sid in store.assign_sync(items[i:i + BATCH])]


def quality(rows: list[dict], pred: list, keep: Sequence[int] | None = None) -> dict:
    keep = range(len(rows)) if keep is None else keep
    gold = [rows[i]["story"] for i in keep]
    p = [pred[i] for i in keep]
    precision, recall, f1 = bcubed(gold, p)
    merge, n_multi = cross_lingual_merge(gold, p, [rows[i]["lang"] for i in keep])
    return {"precision": precision, "recall": recall, "f1": f1, "cross_lingual_merge": merge,
            "multi_language_stories": n_multi, "events": len(gold), "stories": len(set(gold)),
            "predicted": len({x for x in p if x is not None})}


def halves(rows: list[dict]) -> tuple[list[int], list[int]]:
    """Two halves of the stories (by a hash of the label), each with its events."""
    a, b = [], []
    for i, r in enumerate(rows):
        (a if hashlib.sha1(r["story"].encode()).digest()[0] % 2 == 0 else b).append(i)
    return a, b


def held_out(rows: list[dict], items: list[StoryItem], rules: StoryRules, grid: Sequence[float]) -> list[dict]:
    """For each half: the threshold best on the other half, and the F1 it gives on this one. Each
    half is run as its own stream (the other half's events are not there)."""
    a, b = halves(rows)
    out = []
    for tune, test in ((a, b), (b, a)):
        sub_t = [rows[i] for i in tune]
        best = max(grid, key=lambda t: quality(sub_t, assign([items[i] for i in tune], replace(rules, threshold=t)))["f1"])
        sub = [rows[i] for i in test]
        q = quality(sub, assign([items[i] for i in test], replace(rules, threshold=best)))
        out.append({"tuned_threshold": best, **q})
    return out


# --- cost ------------------------------------------------------------------------------------

async def _cost(redis_url: str, active: Sequence[int], events: int = 2000, batch: int = 64) -> list[dict]:
    """Worker CPU per event of RedisStories.assign on one topic holding ``n`` active stories
    (random directions: every event starts or joins one, the worst case for the nearest search)."""
    import redis.asyncio as aioredis

    from workers.stories.redis_store import RedisStories

    rng = np.random.default_rng(0)
    out = []
    for n in active:
        prefix = f"bwbench-{uuid.uuid4().hex[:8]}"
        r = aioredis.Redis.from_url(redis_url)
        try:
            store = RedisStories(r, prefix, StoryRules(threshold=0.6, max_active=n))
            centers = rng.normal(size=(n, 384))
            t0 = 1_700_000_000.0

            def item(k: int, c: int) -> StoryItem:
                v = centers[c] + rng.normal(scale=0.6, size=384)
                return StoryItem("BENCH", (f"bench:{k % 4}", k), f"e{k}", ("en", "de", "ja", "zh")[k % 4],
                                 "words of a story", 0.1, v, t0 + k * 0.01, "news")
            k = 0
            while k < n:  # fill: one event per story
                await store.assign([item(k + j, (k + j) % n) for j in range(min(batch, n - k))])
                k += batch
            items = [item(n + j, int(rng.integers(n))) for j in range(events)]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for j in range(0, events, batch):
                await store.assign(items[j:j + batch])
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            out.append({"active_stories": n, "events": events, "batch": batch,
                        "worker_cpu_us_per_event": round(cpu / events * 1e6, 1),
                        "wall_us_per_event": round(wall / events * 1e6, 1)})
        finally:
            keys = [key async for key in r.scan_iter(match=f"{prefix}:*")]
            if keys:
                await r.delete(*keys)
            await r.aclose()
    return out


def embedding_cost(rows: list[dict], artifact: Path | None = None, triton: str | None = None, batch: int = 32,
                   rounds: int = 30) -> dict:
    """The batch call with and without the embedding output, alternating in the same run: in-process
    (one onnxruntime call fetching probs, or probs + text_emb, plus the EMBEDDING column), and through
    Triton when ``triton`` is given (the client asking for EMBEDDING or not)."""
    import statistics

    from fusion_model.bucketing import run_grouped
    from fusion_model.serving import embedding_column
    from workers.scoring.inprocess import InProcessScorer

    if artifact is None:
        from contracts.settings import get_settings

        artifact = get_settings().triton_repo / "fusion" / "1" / "artifact"
    scorer = InProcessScorer(Path(artifact), threads=1)  # one thread, as one Triton instance
    texts = [r["text"] for r in rows[:batch]]
    langs = [r["lang"] for r in rows[:batch]]
    times: dict[str, list[float]] = {"without": [], "with": []}

    def call(fetch: list[str]) -> None:
        prepared = scorer.pre(texts, [None] * len(texts))
        outs = run_grouped(lambda f: np.concatenate(scorer.session.run(fetch, f), axis=1), prepared.feeds)
        if len(fetch) > 1:
            embedding_column(outs[:, 3:], prepared.modalities, langs, scorer.centers)

    for k in range(rounds + 2):
        for name, fetch in (("without", ["probs"]), ("with", scorer.fetch)):
            t = time.perf_counter()
            call(fetch)
            if k >= 2:  # warm-up
                times[name].append((time.perf_counter() - t) * 1e3)
    out = {"in_process_ms_per_batch": {k: round(statistics.median(v), 2) for k, v in times.items()}, "batch": batch}
    if triton:
        out["triton_ms_per_batch"] = asyncio.run(_triton_cost(triton, texts, langs, rounds))
    return out


async def _triton_cost(url: str, texts: list[str], langs: list[str], rounds: int) -> dict:
    import statistics

    from workers.scoring import ScoreInput
    from workers.scoring.triton import TritonScorer

    scorer = TritonScorer(url, "fusion", max_retries=3)
    await scorer.start()
    try:
        full = list(scorer._outputs)
        plain = [o for o in full if o != "EMBEDDING"]
        batch = [ScoreInput(t, None, lang) for t, lang in zip(texts, langs)]
        times: dict[str, list[float]] = {"without": [], "with": []}
        for k in range(rounds + 2):
            for name, outputs in (("without", plain), ("with", full)):
                scorer._outputs = outputs
                t = time.perf_counter()
                await scorer.score(batch)
                if k >= 2:
                    times[name].append((time.perf_counter() - t) * 1e3)
        return {k: round(statistics.median(v), 2) for k, v in times.items()}
    finally:
        await scorer.stop()


def run(artifact: Path | None = None, cost: bool = False, redis_url: str = "redis://127.0.0.1:6379/0",
        threshold: float | None = None, as_json: bool = False, triton: str | None = None,
        path: Path | None = None) -> int:
    from contracts.settings import get_settings

    rules = StoryRules.from_settings(get_settings())
    if threshold is not None:
        rules = replace(rules, threshold=threshold)
    rows = load_set(path)
    t0 = time.perf_counter()
    items = items_of(rows, embed(rows, artifact))
    embed_s = time.perf_counter() - t0
    assign(items, rules)  # warm-up (the BLAS thread controller, numpy's first calls)
    cpu0 = time.process_time()
    pred = assign(items, rules)
    assign_us = (time.process_time() - cpu0) / len(items) * 1e6
    q = quality(rows, pred)
    grid = [round(x, 2) for x in np.arange(0.30, 0.71, 0.05)]
    sweep = {t: quality(rows, assign(items, replace(rules, threshold=t)))["f1"] for t in grid}
    report = {"set": str(path or set_path()), "threshold": rules.threshold, **q, "sweep_f1": sweep,
              "held_out": held_out(rows, items, rules, grid), "embed_seconds": round(embed_s, 1),
              "in_memory_assign_cpu_us_per_event": round(assign_us, 1)}
    if cost:
        report["cost_redis"] = asyncio.run(_cost(redis_url, (10, 100, 1000)))
        report["embedding_output_cost"] = embedding_cost(rows, artifact, triton)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        print(f"stories bench: {q['events']} events, {q['stories']} labelled stories "
              f"({q['multi_language_stories']} in several languages), threshold {rules.threshold}")
        print(f"  B-cubed precision {q['precision']:.3f}  recall {q['recall']:.3f}  F1 {q['f1']:.3f}  "
              f"(goal >= {GOAL_F1})")
        print(f"  cross-lingual merge {q['cross_lingual_merge']:.3f} (goal >= {GOAL_MERGE}); "
              f"{q['predicted']} stories predicted")
        print("  F1 by threshold: " + "  ".join(f"{t:.2f}:{f:.3f}" for t, f in sweep.items()))
        for k, h in enumerate(report["held_out"]):
            print(f"  held-out half {k + 1}: threshold tuned on the other half {h['tuned_threshold']:.2f} -> "
                  f"F1 {h['f1']:.3f}, cross-lingual merge {h['cross_lingual_merge']:.3f} ({h['events']} events)")
        print(f"  in-memory assignment: {assign_us:.1f} us CPU per event")
        if "embedding_output_cost" in report:
            e = report["embedding_output_cost"]
            line = f"  embedding output, batch of {e['batch']} (median ms per call, without -> with): in-process " \
                   f"{e['in_process_ms_per_batch']['without']} -> {e['in_process_ms_per_batch']['with']}"
            if "triton_ms_per_batch" in e:
                line += f"; Triton {e['triton_ms_per_batch']['without']} -> {e['triton_ms_per_batch']['with']}"
            print(line)
        for c in report.get("cost_redis", ()):
            print(f"  redis store, {c['active_stories']:>4} active stories/topic: worker CPU "
                  f"{c['worker_cpu_us_per_event']} us/event, wall {c['wall_us_per_event']} us/event "
                  f"(batches of {c['batch']})")
    return 0 if q["f1"] >= GOAL_F1 and q["cross_lingual_merge"] >= GOAL_MERGE else 1
