"""``babelwatch bench model``: the fusion model served by Triton vs the same ONNX model in-process.

Both sides are ``workers.scoring.Scorer`` implementations scoring the same inputs (the demo
stream's events, with their images) in one run:

* in-process: ``workers.scoring.inprocess.InProcessScorer``, onnxruntime on ONE thread, the way
  one Triton model instance runs it (config.pbtxt), preprocessing included;
* served: ``workers.scoring.triton.TritonScorer`` (async gRPC, what the worker uses) against a
  Triton this command starts on free ports, CPU variant.

Closed loop, one request in flight, at each batch size: rows/s and the p50/p99 of one call. The ratio
served / in-process is what the server costs (or gains); the machine's noise hits both sides alike.
``--concurrency N`` adds a served run with N requests in flight, where Triton's dynamic batcher merges
them (the in-process side has no equivalent).
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from workers.scoring import ScoreInput, Scorer

log = logging.getLogger("babelwatch.bench")


@dataclass
class Measure:
    side: str
    batch: int
    concurrency: int
    calls: int
    rows_per_s: float
    p50_ms: float
    p99_ms: float


def sample_inputs() -> list[ScoreInput]:
    """The demo stream's valid events as model inputs (text, decoded image bytes, language)."""
    import base64

    from babelwatch.demo import sample_objects

    out = []
    for ev in sample_objects():
        if not (ev.get("text") or ev.get("image_b64")):
            continue
        try:
            image = base64.b64decode(ev["image_b64"], validate=True) if ev.get("image_b64") else None
        except (ValueError, TypeError):
            continue  # the sample's deliberately invalid events
        out.append(ScoreInput(text=ev.get("text") or "", image=image, lang=ev.get("lang") or "und"))
    return out


def batches_of(inputs: Sequence[ScoreInput], size: int, n: int) -> list[list[ScoreInput]]:
    """``n`` batches of ``size`` rows walking through the inputs (wrapping around)."""
    return [[inputs[(k * size + i) % len(inputs)] for i in range(size)] for k in range(n)]


async def measure(side: str, scorer: Scorer, batches: Sequence[Sequence[ScoreInput]], seconds: float,
                  concurrency: int = 1, min_calls: int = 3) -> Measure:
    await scorer.score(batches[0])  # warm-up: first call allocates, connects
    lat: list[float] = []
    deadline = time.perf_counter() + seconds
    counter = iter(range(1 << 62))

    async def loop() -> None:
        while time.perf_counter() < deadline or len(lat) < min_calls:
            b = batches[next(counter) % len(batches)]
            t0 = time.perf_counter()
            await scorer.score(b)
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    size = len(batches[0])
    return Measure(side, size, concurrency, len(lat), round(size * len(lat) / wall, 1),
                   round(float(np.percentile(lat, 50)) * 1e3, 2), round(float(np.percentile(lat, 99)) * 1e3, 2))


async def _run(grpc_url: str, artifact: Path, batch_sizes: Sequence[int], seconds: float,
               concurrency: int) -> list[Measure]:
    from workers.scoring.inprocess import InProcessScorer
    from workers.scoring.triton import TritonScorer

    inputs = sample_inputs()
    local = InProcessScorer(artifact, threads=1)
    served = TritonScorer(grpc_url, "fusion", timeout_s=120.0)
    await served.start()
    results = []
    try:
        for bs in batch_sizes:
            batches = batches_of(inputs, bs, 64)
            for side, scorer in (("in-process", local), ("triton", served)):
                m = await measure(side, scorer, batches, seconds)
                log.info("%s", json.dumps(asdict(m)))
                results.append(m)
            if concurrency > 1:
                m = await measure("triton", served, batches, seconds, concurrency=concurrency)
                log.info("%s", json.dumps(asdict(m)))
                results.append(m)
    finally:
        await served.stop()
    return results


def format_report(results: Sequence[Measure]) -> str:
    base = {m.batch: m for m in results if m.side == "in-process"}
    lines = ["| side | batch | in flight | rows/s | p50 ms | p99 ms | rows/s vs in-process |",
             "|---|---|---|---|---|---|---|"]
    for m in results:
        ratio = m.rows_per_s / base[m.batch].rows_per_s if m.batch in base else float("nan")
        lines.append(f"| {m.side} | {m.batch} | {m.concurrency} | {m.rows_per_s:,.1f} | {m.p50_ms:.1f} | "
                     f"{m.p99_ms:.1f} | {ratio:.2f} |")
    return "\n".join(lines)


def instances(repo: Path) -> int:
    """The CPU variant's instance count, from its config.pbtxt."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    cfg = text_format.Parse((Path(repo) / "fusion" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    return sum(g.count for g in cfg.instance_group) or 1


def run(settings, batch_sizes: Sequence[int] = (1, 32), seconds: float = 10.0, concurrency: int = 0,
        as_json: bool = False) -> int:
    from babelwatch.bench.pipeline import loadavg
    from babelwatch.localstack.triton import TritonServer

    artifact = (settings.triton_repo / "fusion" / "1" / "artifact").resolve()
    if not (artifact / "model.onnx").is_file():
        print(f"no built model at {artifact}: run `babelwatch model build` first")
        return 2
    load_before = loadavg()
    with TritonServer(settings.triton_repo, load_models=["fusion"]) as server:
        results = asyncio.run(_run(server.grpc_url, artifact, batch_sizes, seconds, concurrency))
    if as_json:
        base = {m.batch: m.rows_per_s for m in results if m.side == "in-process"}
        print(json.dumps({"model": artifact.name, "triton_instances": instances(settings.triton_repo),
                          "seconds": seconds, "load_before": load_before, "load_after": loadavg(),
                          "results": [{**asdict(m), "vs_in_process": round(m.rows_per_s / base[m.batch], 4)
                                       if base.get(m.batch) else None} for m in results]}))
        return 0
    print(f"fusion model {artifact.name}: Triton (CPU variant, {instances(settings.triton_repo)} instance(s), 1 thread "
          f"each) vs onnxruntime in-process "
          f"(1 thread), same inputs (demo stream, {sum(1 for x in sample_inputs() if x.image)} of "
          f"{len(sample_inputs())} with images), {seconds:g}s per row; load average before {load_before}, "
          f"after {loadavg()}")
    print(format_report(results))
    return 0
