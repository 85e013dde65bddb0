"""Length grouping for the packed graph on CPU: score a batch as a few sub-batches of similar length.

A batch is padded to its longest text, and attention costs grow with the padded length, so one long
post makes every short row in its batch pay for it. Sorting rows by token count and running groups
of neighbours cuts the padding; rows keep their values (masking makes padding inert), only the order
of work changes. Measured in bench/RESULTS.md.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

GROUP_ROWS = 8  # measured best of 8/16/32 (bench/RESULTS.md)


def length_groups(mask: np.ndarray, max_rows: int = GROUP_ROWS) -> list[np.ndarray]:
    """Row indices sorted by token count, cut into groups of at most ``max_rows``."""
    order = np.argsort(mask.sum(axis=1), kind="stable")
    return [order[i:i + max_rows] for i in range(0, len(order), max_rows)]


def sub_feeds(feeds: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The packed feeds of ``rows`` only, cut to their own longest text."""
    mask = feeds["attention_mask"][rows]
    t = max(int(mask.sum(axis=1).max()), 1)
    has_image = feeds["has_image"]
    image_of_row = np.cumsum(has_image > 0.5) - 1  # row -> its index in the packed pixel_values
    with_image = rows[has_image[rows] > 0.5]
    return {"input_ids": feeds["input_ids"][rows, :t], "attention_mask": mask[:, :t],
            "pixel_values": feeds["pixel_values"][image_of_row[with_image]],
            "has_image": has_image[rows]}


def run_grouped(run: Callable[[dict[str, np.ndarray]], np.ndarray], feeds: dict[str, np.ndarray],
                max_rows: int = GROUP_ROWS) -> np.ndarray:
    """``run(feeds) -> probs`` over length groups, reassembled in the batch's row order."""
    n = len(feeds["input_ids"])
    if n <= max_rows:
        return run(feeds)
    out = None
    for rows in length_groups(feeds["attention_mask"], max_rows):
        probs = run(sub_feeds(feeds, rows))
        if out is None:
            out = np.empty((n, probs.shape[1]), dtype=probs.dtype)
        out[rows] = probs
    return out
