"""The dense graph's input layout, numpy only (the GPU ensemble's preprocessing step imports it
next to the tokenizer, without torch): packed feeds -> one image slot per row, int32 ids, and
sequence lengths rounded up to a few buckets.

Requests whose lengths fall in the same bucket have equal shapes, which is what lets Triton's
dynamic batcher merge them in front of the engine.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

SEQ_BUCKETS = (16, 32, 64, 128)


def dense_feeds(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Packed feeds (``Preprocessor`` output) -> dense feeds: one image slot per row, int32 ids."""
    has_image = feeds["has_image"]
    packed = feeds["pixel_values"]
    rows = np.flatnonzero(has_image > 0.5)
    if len(rows) != len(packed):
        raise ValueError(f"{len(packed)} packed images for {len(rows)} rows with has_image")
    pixels = np.zeros((len(has_image), *packed.shape[1:]), dtype=np.float32)
    pixels[rows] = packed
    return {"input_ids": feeds["input_ids"].astype(np.int32), "attention_mask": feeds["attention_mask"].astype(np.int32),
            "pixel_values": pixels, "has_image": has_image.astype(np.float32)}


def bucket_length(n: int, buckets: Sequence[int] = SEQ_BUCKETS) -> int:
    """The smallest bucket >= n (n beyond the largest bucket keeps its own length)."""
    for b in buckets:
        if n <= b:
            return b
    return n


def pad_to_bucket(ids: np.ndarray, mask: np.ndarray, pad_id: int,
                  buckets: Sequence[int] = SEQ_BUCKETS) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad [B, T] ids/mask to the bucket of the longest used length (mask zeros are padding)."""
    used = int(mask.sum(axis=1).max()) if mask.size else 0
    t = bucket_length(max(used, 1), buckets)
    ids, mask = ids[:, :max(used, 1)], mask[:, :max(used, 1)]
    if ids.shape[1] < t:
        pad = t - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=pad_id)
        mask = np.pad(mask, ((0, 0), (0, pad)), constant_values=0)
    return ids, mask


def per_request_feeds(feeds: dict[str, np.ndarray], sizes: Sequence[int], pad_id: int,
                      buckets: Sequence[int] = SEQ_BUCKETS) -> list[dict[str, np.ndarray]]:
    """Split one preprocessed batch (packed feeds) into the dense feeds of each request, each padded
    to its own length bucket: a request's rows keep their values, only the padding differs."""
    dense = dense_feeds(feeds)
    out, start = [], 0
    for n in sizes:
        end = start + n
        ids, mask = pad_to_bucket(dense["input_ids"][start:end], dense["attention_mask"][start:end], pad_id, buckets)
        out.append({"input_ids": ids, "attention_mask": mask, "pixel_values": dense["pixel_values"][start:end],
                    "has_image": dense["has_image"][start:end]})
        start = end
    return out
