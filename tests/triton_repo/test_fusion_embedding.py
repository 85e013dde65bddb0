"""The served fusion model's EMBEDDING output (stories): the worker's Triton client asks for it
because config.pbtxt declares it, and gets what the in-process scorer computes, in the same call as
the probabilities; rows without text get none."""
from __future__ import annotations

import asyncio

import bw_paths
import numpy as np
import pytest

from bw_triton import sample_images

pytestmark = pytest.mark.integration

ARTIFACT = bw_paths.REPO / "triton_repo" / "models" / "fusion" / "1" / "artifact"


def test_triton_scorer_returns_the_in_process_embeddings(stack):
    from workers.scoring import ScoreInput
    from workers.scoring.inprocess import InProcessScorer
    from workers.scoring.triton import TritonScorer

    image = sample_images(1)[0]
    rows = [ScoreInput("Tesla recalls two million cars over Autopilot safety", None, "en"),
            ScoreInput("特斯拉因自动驾驶安全问题召回200万辆汽车", image, "zh"),
            ScoreInput("", image, "und"),  # image only: no embedding
            ScoreInput("Airbus livre un nombre record d'avions", None, "fr"),
            ScoreInput("😀🚀", None, "und")]

    async def served():
        scorer = TritonScorer(stack.triton_grpc_url, "fusion", max_retries=3)
        await scorer.start()
        try:
            assert "EMBEDDING" in scorer._outputs
            return await scorer.score(rows)
        finally:
            await scorer.stop()

    got = asyncio.run(served())
    local = asyncio.run(InProcessScorer(ARTIFACT, threads=1).score(rows))
    assert [o.embedding is None for o in got] == [False, False, True, False, False]
    for g, want in zip(got, local):
        assert g.modalities == want.modalities
        np.testing.assert_allclose(list(g.probabilities.values()), list(want.probabilities.values()), atol=1e-5)
        if want.embedding is not None:
            assert g.embedding.shape == (384,)
            assert float(g.embedding @ want.embedding) > 0.9999  # float16 on the wire
