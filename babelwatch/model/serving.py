"""What the Triton Python backends of the fusion model share (triton_repo/models/fusion*/1/model.py):
turning the requests the dynamic batcher merged into one batch of rows, and the ERROR column.

Kept free of ``triton_python_backend_utils`` (it exists only inside the backend's stub): callers
pass its ``get_input_tensor_by_name``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def _decode(values) -> list[str]:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def gather(requests: Sequence, get_input: Callable) -> tuple[list[str], list[bytes | None], list[int]]:
    """Requests with TEXT and (optional) IMAGE -> (texts, images, rows per request), in order.
    An empty IMAGE value means "no image"."""
    texts: list[str] = []
    images: list[bytes | None] = []
    sizes: list[int] = []
    for request in requests:
        raw_text = get_input(request, "TEXT").as_numpy().reshape(-1)
        image_tensor = get_input(request, "IMAGE")
        raw_image = image_tensor.as_numpy().reshape(-1) if image_tensor is not None else [b""] * len(raw_text)
        sizes.append(len(raw_text))
        texts.extend(_decode(raw_text))
        images.extend(bytes(x) if x else None for x in raw_image)
    return texts, images, sizes


def error_column(image_errors: Sequence[str | None]) -> np.ndarray:
    """The ERROR output: ``b""`` or ``b"image: <why it was dropped>"`` per row, shape [rows, 1]."""
    return np.array([("image: " + e).encode() if e else b"" for e in image_errors], dtype=np.object_).reshape(-1, 1)


def slices(sizes: Sequence[int]):
    """(start, end) of each request's rows in the merged batch."""
    start = 0
    for n in sizes:
        yield start, start + n
        start += n
