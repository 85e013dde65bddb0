"""``InProcessScorer``: the fusion artifact run by onnxruntime in this process, no server."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from contracts.schema import LABELS
from fusion_model.bucketing import run_grouped
from fusion_model.serving import EMBEDDING_OUTPUT, embedding_column, error_column, load_centers
from workers.scoring import ScoreInput, ScoreOutput, decode_outputs


class InProcessScorer:
    """The fusion artifact run by onnxruntime in this process (no server), with the served model's
    per-row isolation: a bad image or text fails only its row (reason in the row's ``error``, the
    row scored on what is left). Anything else raises for the whole call."""

    def __init__(self, artifact: Path, threads: int | None = None, limits=None) -> None:
        from fusion_model.export import ort_session
        from fusion_model.preprocess import Preprocessor

        self.model_id = f"fusion:{artifact.resolve().name}"
        self.pre = Preprocessor.from_dir(artifact, limits)  # limits: ImageLimits (None: the defaults)
        # None: all cores (the CLI's default); the speed benchmark pins 1 to match a Triton instance
        self.session = ort_session(artifact / "model.onnx", threads=threads or os.cpu_count() or 1)
        # the text embedding the head already computes (stories); absent from older artifacts
        self.fetch = ["probs"] + [o.name for o in self.session.get_outputs() if o.name == EMBEDDING_OUTPUT]
        self.centers = load_centers(artifact)  # per-language means (None: an artifact built before them)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def ready(self) -> bool:
        return True  # in this process: nothing to wait for

    async def score(self, batch: Sequence[ScoreInput]) -> list[ScoreOutput]:
        if not batch:
            return []
        prepared = self.pre([x.text for x in batch], [x.image for x in batch])
        # one call for both outputs, in length groups as the server does
        outs = run_grouped(lambda f: np.concatenate(self.session.run(self.fetch, f), axis=1), prepared.feeds)
        probs = outs[:, :len(LABELS)]
        if probs.shape != (len(batch), len(LABELS)):
            raise RuntimeError(f"model returned probs of shape {probs.shape} for {len(batch)} rows")
        embeddings = None
        if len(self.fetch) > 1:  # as the served model: relative to the language's center, float16
            embeddings = embedding_column(outs[:, len(LABELS):], prepared.modalities, [x.lang for x in batch],
                                          self.centers)
        return decode_outputs(probs, prepared.modalities, error_column(prepared.row_errors), embeddings)
