"""Small synthetic images whose colour and pattern carry the sentiment label.

No labelled image-sentiment data exists offline. To teach the fusion to use an image when it
carries signal (and to measure that it does), training attaches synthetic images to a subset of
the examples: a chart-like picture, red-ish with a falling line (negative), grey-blue with a flat
line (neutral), green-ish with a rising line (positive), with random hue, noise, thickness and
placement. The images are PNG bytes and go through the same decoding and preprocessing as served
images. Their correlation with the label is imperfect on purpose (``agree`` < 1).

Distractors: images that carry no label signal (random crops/flips/colour shifts of the two sample
photos shipped with scikit-learn, and random abstract shapes), attached to some examples
independently of the label, so that the model learns to keep its trust in an image for the
images that carry signal and to fall back on the text for the others (real photos).
"""
from __future__ import annotations

import io

import numpy as np

GENERATOR_VERSION = "2"
DISTRACTOR = -1  # bank label of a distractor image
_BASE = {0: (185, 45, 45), 1: (125, 128, 140), 2: (45, 165, 75)}


def synthetic_image(label: int, rng: np.random.Generator, size: int = 96) -> bytes:
    from PIL import Image, ImageDraw

    base = np.array(_BASE[label], np.float32) + rng.uniform(-35, 35, 3)
    grad = np.linspace(-20, 20, size, dtype=np.float32)[None, :, None] * rng.uniform(-1, 1)
    arr = np.clip(base[None, None, :] + grad + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    draw = ImageDraw.Draw(im)
    n = int(rng.integers(4, 8))
    xs = np.linspace(rng.uniform(2, 12), size - rng.uniform(2, 12), n)
    mid = size * rng.uniform(0.35, 0.65)
    span = size * rng.uniform(0.25, 0.45)
    trend = {0: 1.0, 1: 0.0, 2: -1.0}[label]  # image y grows downwards: negative falls
    ys = mid - span / 2 * trend + trend * span * np.linspace(0, 1, n) + rng.normal(0, size * 0.04, n)
    if label == 1:
        ys = mid + rng.normal(0, size * 0.02, n)
    ink = tuple(int(v) for v in rng.integers(0, 60, 3)) if rng.random() < 0.5 else tuple(
        int(v) for v in rng.integers(200, 256, 3))
    points = list(zip(xs.tolist(), np.clip(ys, 2, size - 2).tolist(), strict=True))
    draw.line(points, fill=ink, width=int(rng.integers(2, 6)))
    if label == 2 and rng.random() < 0.5:  # a sun
        r, cx, cy = rng.uniform(6, 12), rng.uniform(15, size - 15), rng.uniform(10, 25)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(250, 220, 60))
    if label == 0 and rng.random() < 0.5:  # a cross
        c, s = rng.uniform(15, size - 15, 2), rng.uniform(6, 12)
        draw.line((c[0] - s, c[1] - s, c[0] + s, c[1] + s), fill=(20, 20, 20), width=3)
        draw.line((c[0] - s, c[1] + s, c[0] + s, c[1] - s), fill=(20, 20, 20), width=3)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _sample_photos() -> list:
    from PIL import Image

    try:
        from pathlib import Path

        import sklearn.datasets

        d = Path(sklearn.datasets.__file__).parent / "images"
        return [Image.open(p).convert("RGB") for p in sorted(d.glob("*.jpg"))]
    except Exception:  # noqa: BLE001 - distractors then come from abstract shapes only
        return []


def distractor_image(rng: np.random.Generator, photos: list) -> bytes:
    """An image with no label signal: a jittered crop of a sample photo, or random shapes."""
    from PIL import Image, ImageDraw

    size = int(rng.integers(96, 161))
    if photos and rng.random() < 0.6:
        ph = photos[int(rng.integers(len(photos)))]
        w, h = ph.size
        s = rng.uniform(0.25, 1.0)
        cw, ch = int(w * s), int(h * s * rng.uniform(0.7, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        im = ph.crop((x, y, x + cw, y + ch)).resize((size, size), Image.BILINEAR)
        if rng.random() < 0.5:
            im = im.transpose(Image.FLIP_LEFT_RIGHT)
        a = np.asarray(im, np.float32)[:, :, rng.permutation(3)] * rng.uniform(0.6, 1.3) + rng.uniform(-30, 30)
        im = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGB")
    else:
        im = Image.fromarray(np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8), "RGB")
        draw = ImageDraw.Draw(im)
        for _ in range(int(rng.integers(3, 10))):
            box = sorted(rng.uniform(0, size, 2).tolist()) + sorted(rng.uniform(0, size, 2).tolist())
            x0, x1, y0, y1 = box
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            kind = rng.integers(3)
            if kind == 0:
                draw.ellipse((x0, y0, x1 + 1, y1 + 1), fill=fill)
            elif kind == 1:
                draw.rectangle((x0, y0, x1 + 1, y1 + 1), fill=fill)
            else:
                draw.line((x0, y1, x1, y0), fill=fill, width=int(rng.integers(1, 6)))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def image_bank(n_per_class: int, seed: int, n_classes: int = 3,
               n_distractors: int = 0) -> tuple[list[bytes], np.ndarray]:
    """``n_per_class`` images per label then ``n_distractors`` (label DISTRACTOR), deterministic in
    ``seed``: (png bytes, labels)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(n_per_class):
        for label in range(n_classes):
            images.append(synthetic_image(label, rng))
            labels.append(label)
    photos = _sample_photos() if n_distractors else []
    for _ in range(n_distractors):
        images.append(distractor_image(rng, photos))
        labels.append(DISTRACTOR)
    return images, np.array(labels, dtype=np.int64)


def assign_images(labels: np.ndarray, bank_labels: np.ndarray, bank_index: np.ndarray, fraction: float,
                  agree: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick a bank image for a ``fraction`` of the examples: with probability ``agree`` one of the
    example's own label, else one of a different label. Returns (bank row or -1, has_image bool)."""
    n = len(labels)
    has = rng.random(n) < fraction
    chosen = np.full(n, -1, dtype=np.int64)
    pools = {int(c): bank_index[bank_labels[bank_index] == c] for c in np.unique(bank_labels) if c >= 0}
    classes = np.array(sorted(pools))
    for i in np.nonzero(has)[0]:
        c = labels[i]
        if rng.random() >= agree:
            others = classes[classes != c]
            c = others[rng.integers(len(others))]
        pool = pools[int(c)]
        chosen[i] = pool[rng.integers(len(pool))]
    return chosen, has
