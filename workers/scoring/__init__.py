"""Scoring: the ``Scorer`` protocol and its rows, shared by every implementation.

Implementations: ``workers.scoring.triton.TritonScorer`` (the worker's, one gRPC call per batch)
and ``workers.scoring.inprocess.InProcessScorer`` (onnxruntime over the built artifact, no server:
``babelwatch score`` and the model benchmark). Both answer a row the model could not fully read
with its reason in ``ScoreOutput.error`` and raise for a call that fails as a whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np

from contracts.schema import LABELS

TEXT_USED, IMAGE_USED = 1, 2  # bits of the model's MODALITIES output


@dataclass(frozen=True)
class ScoreInput:
    text: str
    image: bytes | None
    lang: str


@dataclass(frozen=True)
class ScoreOutput:
    probabilities: dict[str, float]
    label: str
    modalities: list[str]
    error: str | None = None  # a per-event problem the model reported (e.g. an undecodable image)


class ScoringFailed(Exception):
    """The model failed a request for a reason of the request's own (not the server's state)."""


class Scorer(Protocol):
    model_id: str

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def score(self, batch: Sequence[ScoreInput]) -> list[ScoreOutput]: ...
    async def ready(self) -> bool: ...


def decode_outputs(probs: np.ndarray, modalities: np.ndarray, errors: np.ndarray | None = None) -> list[ScoreOutput]:
    """The model's PROBS, MODALITIES and (optional) ERROR tensors -> one ScoreOutput per row."""
    out = []
    errs = errors.reshape(-1) if errors is not None else [b""] * len(probs)
    for row, mod, err in zip(probs, modalities.reshape(-1), errs):
        used = [name for bit, name in ((TEXT_USED, "text"), (IMAGE_USED, "image")) if int(mod) & bit]
        message = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err or "")
        out.append(
            ScoreOutput(
                probabilities={label: float(p) for label, p in zip(LABELS, row)},
                label=LABELS[int(np.argmax(row))],
                modalities=used,
                error=message or None,
            )
        )
    return out
