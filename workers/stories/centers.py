"""Running per-language centers of story vectors (docs/design.md, "Stories": why centering)."""
from __future__ import annotations

import numpy as np

from workers.stories.rules import CENTER_PRIOR, DIM


class LanguageCenters:
    """Running mean of the embeddings seen per language: an event's vector is taken relative to
    its language's, which removes what the language (not the event) puts into the embedding."""

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, int] = {}

    def center(self, lang: str, e: np.ndarray) -> np.ndarray | None:
        """Fold ``e`` into its language's mean and return ``e`` minus that mean, normalised (None
        when nothing is left)."""
        s = self.sums.get(lang)
        s = e.copy() if s is None else s + e
        n = self.counts.get(lang, 0) + 1
        self.sums[lang], self.counts[lang] = s, n
        x = e - s / (CENTER_PRIOR + n)
        norm = float(np.linalg.norm(x))
        return x / norm if norm > 1e-9 else None

    def center_many(self, langs: list[str], vectors: list[np.ndarray]) -> list[np.ndarray | None]:
        """:meth:`center` for each in order, one language at a time in a few array operations."""
        out: list[np.ndarray | None] = [None] * len(vectors)
        groups: dict[str, list[int]] = {}
        for i, lang in enumerate(langs):
            groups.setdefault(lang, []).append(i)
        for lang, idx in groups.items():
            e = np.stack([vectors[i] for i in idx])
            running = np.cumsum(e, axis=0)
            if lang in self.sums:
                running += self.sums[lang]
            n = self.counts.get(lang, 0) + np.arange(1, len(idx) + 1)
            x = e - running / (CENTER_PRIOR + n)[:, None]
            norms = np.sqrt(np.einsum("ij,ij->i", x, x))
            self.sums[lang], self.counts[lang] = running[-1].copy(), int(n[-1])
            for j, i in enumerate(idx):
                if norms[j] > 1e-9:
                    out[i] = x[j] / norms[j]
        return out
