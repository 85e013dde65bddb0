"""Serving-side preprocessing: raw UTF-8 text and raw image bytes -> the ONNX graph's inputs.

Only numpy, Pillow and ``tokenizers`` are imported here (no torch, no transformers): the Triton
Python backend imports this module next to onnxruntime. Training computes its embeddings through
the same code, so what the model saw in training is what it sees when served.

The exported graph (``model.onnx``) takes::

    input_ids      INT64 [batch, seq]         token ids, padded with the tokenizer's pad id
    attention_mask INT64 [batch, seq]         1 = token; a row of zeros = "no text" for that row
    pixel_values   FP32  [num_images, 3, H, W] the images of the rows with has_image = 1, in row order
    has_image      FP32  [batch]              1.0 where the row has an image, else 0.0

and returns ``probs`` FP32 [batch, 3] (negative, neutral, positive) and ``gates`` FP32 [batch, 2]
(the per-example weights alpha of the text and beta of the image). ``num_images`` may be 0: a
text-only batch costs no image-encoder time.
"""
from __future__ import annotations

import io
import json
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

PREPROCESS_FILE = "preprocess.json"
INPUT_NAMES = ("input_ids", "attention_mask", "pixel_values", "has_image")
OUTPUT_NAMES = ("probs", "gates")
MAX_TEXT_CHARS = 4000  # longer texts are cut before tokenization (the encoder sees max_length tokens)


class ImageDecodeError(ValueError):
    """The bytes are not an image Pillow can decode (or the image is empty or too large)."""


# --------------------------------------------------------------------------- images
@dataclass(frozen=True)
class ImagePreprocessConfig:
    """How raw bytes become the encoder's tensor: ``(resize, crop, x * rescale - mean) / std``.

    mode ``shortest_edge``: resize so the shorter side is ``size``, then center-crop ``crop`` x
    ``crop``. mode ``exact``: resize straight to ``crop`` x ``crop`` (ViT-style processors).
    mean/std are per RGB channel, applied after multiplying the 0..255 pixel values by ``rescale``.
    """

    size: int = 256
    crop: int = 224
    mode: str = "shortest_edge"
    rescale: float = 1.0
    mean: tuple[float, float, float] = (127.0, 127.0, 127.0)
    std: tuple[float, float, float] = (128.0, 128.0, 128.0)
    resample: str = "bicubic"
    max_pixels: int = 50_000_000  # decompression-bomb guard (width * height before resizing)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ImagePreprocessConfig":
        d = dict(d)
        d["mean"], d["std"] = tuple(float(x) for x in d["mean"]), tuple(float(x) for x in d["std"])
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


_RESAMPLE = {"nearest": 0, "bilinear": 2, "bicubic": 3, "lanczos": 1, "box": 4, "hamming": 5}


def decode_image(data: bytes, max_pixels: int = 50_000_000):
    """Raw bytes -> an RGB ``PIL.Image``; raises ImageDecodeError with the reason when it cannot."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if data is None or len(data) == 0:
        raise ImageDecodeError("empty image: 0 bytes")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageDecodeError(f"image must be bytes, got {type(data).__name__}")
    try:
        im = Image.open(io.BytesIO(bytes(data)))
        w, h = im.size
        if w <= 0 or h <= 0:
            raise ImageDecodeError(f"image has no pixels ({w}x{h})")
        if w * h > max_pixels:
            raise ImageDecodeError(f"image too large: {w}x{h} pixels (limit {max_pixels})")
        im.draft("RGB", (512, 512))  # JPEG: decode at reduced scale when the image is big
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode in ("RGBA", "LA", "P") and ("transparency" in im.info or im.mode != "P"):
            rgba = im.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, rgba)
        return im.convert("RGB")
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise ImageDecodeError(f"not a decodable image ({len(data)} bytes, starts {bytes(data[:8])!r}): {e}") from e
    except (OSError, SyntaxError, ValueError, EOFError, TypeError) as e:
        raise ImageDecodeError(f"corrupt or truncated image ({len(data)} bytes): {e}") from e


def image_to_array(im, cfg: ImagePreprocessConfig) -> np.ndarray:
    """An RGB PIL image -> float32 [3, crop, crop]."""
    resample = _RESAMPLE[cfg.resample]
    if cfg.mode == "shortest_edge":
        w, h = im.size
        s = cfg.size / min(w, h)
        nw, nh = max(cfg.crop, round(w * s)), max(cfg.crop, round(h * s))
        im = im.resize((nw, nh), resample)
        left, top = (nw - cfg.crop) // 2, (nh - cfg.crop) // 2
        im = im.crop((left, top, left + cfg.crop, top + cfg.crop))
    elif cfg.mode == "exact":
        im = im.resize((cfg.crop, cfg.crop), resample)
    else:
        raise ValueError(f"unknown image resize mode {cfg.mode!r}")
    a = np.asarray(im, dtype=np.float32)
    if cfg.rescale != 1.0:
        a = a * np.float32(cfg.rescale)
    a = (a - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def preprocess_image(data: bytes, cfg: ImagePreprocessConfig) -> np.ndarray:
    """Raw image bytes -> float32 [3, crop, crop]; ImageDecodeError when undecodable."""
    return image_to_array(decode_image(data, cfg.max_pixels), cfg)


# --------------------------------------------------------------------------- text
def clean_text(text: str | bytes | None) -> str:
    """Bytes are UTF-8 (invalid sequences replaced); NFC; control characters dropped; cut to
    MAX_TEXT_CHARS. Used in training and serving alike."""
    if text is None:
        return ""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", "replace")
    text = unicodedata.normalize("NFC", str(text))[:MAX_TEXT_CHARS]
    text = text.replace("\ufffd", " ")
    text = "".join(ch if (ch in "\t\n" or unicodedata.category(ch)[0] != "C") else " " for ch in text)
    return " ".join(text.split())


@dataclass
class TextTokenizer:
    """A ``tokenizers.Tokenizer`` (the HF fast tokenizer's backend) with the model's settings.

    Rows whose text is empty get an all-zero attention mask: the graph reads that as "no text".
    """

    tokenizer: object  # tokenizers.Tokenizer
    max_length: int = 128
    prefix: str = ""
    pad_id: int = 0

    def __post_init__(self) -> None:
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.tokenizer.enable_truncation(max_length=self.max_length)

    @classmethod
    def from_file(cls, path: str | Path, **kw) -> "TextTokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(str(path)), **kw)

    @classmethod
    def from_str(cls, json_str: str, **kw) -> "TextTokenizer":
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_str(json_str), **kw)

    def __call__(self, texts: Sequence[str | bytes | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> input_ids int64 [B, T], attention_mask int64 [B, T], has_text bool [B]."""
        cleaned = [clean_text(t) for t in texts]
        has_text = np.array([bool(t) for t in cleaned], dtype=bool)
        encs = self.tokenizer.encode_batch([self.prefix + t for t in cleaned], add_special_tokens=True)
        T = max([len(e.ids) for e in encs] + [1])
        ids = np.full((len(encs), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), T), dtype=np.int64)
        for i, e in enumerate(encs):
            n = len(e.ids)
            ids[i, :n] = e.ids
            if has_text[i]:
                mask[i, :n] = 1
        return ids, mask, has_text


# --------------------------------------------------------------------------- both
@dataclass
class Batch:
    """The ONNX feeds for one batch plus what the server reports back per row."""

    feeds: dict[str, np.ndarray]
    has_text: np.ndarray  # bool [B]
    has_image: np.ndarray  # bool [B]
    image_errors: list[str | None] = field(default_factory=list)  # per row: why an image was dropped

    @property
    def modalities(self) -> np.ndarray:
        """int32 [B]: bit 1 = text used, bit 2 = image used (the served MODALITIES output)."""
        return (self.has_text.astype(np.int32) * 1 + self.has_image.astype(np.int32) * 2).astype(np.int32)


class Preprocessor:
    """Texts + image bytes -> ONNX feeds, from an artifact directory's ``preprocess.json``."""

    def __init__(self, text: TextTokenizer, image: ImagePreprocessConfig) -> None:
        self.text = text
        self.image = image

    @classmethod
    def from_dir(cls, artifact_dir: str | Path) -> "Preprocessor":
        d = Path(artifact_dir)
        cfg = json.loads((d / PREPROCESS_FILE).read_text(encoding="utf-8"))
        t = cfg["text"]
        text = TextTokenizer.from_file(d / t["tokenizer_file"], max_length=int(t["max_length"]),
                                       prefix=t.get("prefix", ""), pad_id=int(t["pad_id"]))
        return cls(text, ImagePreprocessConfig.from_dict(cfg["image"]))

    def __call__(self, texts: Sequence[str | bytes | None], images: Iterable[bytes | None] | None = None) -> Batch:
        ids, mask, has_text = self.text(texts)
        B = len(texts)
        imgs = list(images) if images is not None else [None] * B
        if len(imgs) != B:
            raise ValueError(f"{B} texts but {len(imgs)} images")
        arrays, has_image, errors = [], np.zeros(B, dtype=bool), [None] * B
        for i, data in enumerate(imgs):
            if data is None or len(data) == 0:
                continue
            try:
                arrays.append(preprocess_image(data, self.image))
                has_image[i] = True
            except ImageDecodeError as e:
                errors[i] = str(e)
        c = self.image.crop
        pixels = np.stack(arrays).astype(np.float32) if arrays else np.zeros((0, 3, c, c), np.float32)
        feeds = {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels,
                 "has_image": has_image.astype(np.float32)}
        return Batch(feeds, has_text, has_image, errors)
