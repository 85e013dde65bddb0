"""Serving-side preprocessing: raw UTF-8 text and raw image bytes -> the ONNX graph's inputs.

Imports only numpy, Pillow and ``tokenizers`` (the Triton Python backend loads it next to
onnxruntime); training uses the same code. Images are judged from their header before decoding,
and a bad input fails only its own row (``Batch.row_errors``).
Graph inputs/outputs and image guards: docs/design.md#serving-preprocessing
"""
from __future__ import annotations

import io
import json
import unicodedata
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

PREPROCESS_FILE = "preprocess.json"
INPUT_NAMES = ("input_ids", "attention_mask", "pixel_values", "has_image")
OUTPUT_NAMES = ("probs", "gates")
MAX_TEXT_CHARS = 4000  # longer texts are cut before tokenization (the encoder sees max_length tokens)


class ImageDecodeError(ValueError):
    """The bytes are not an image we decode: empty, not an image, a refused format or size (judged
    from the header, before any pixel is decoded), or corrupt. ``str(e)`` is the row's reason."""


# --------------------------------------------------------------------------- image limits
# The defaults live HERE and only here. contracts/settings.py mirrors them as
# BABELWATCH_MAX_IMAGE_PIXELS / _MAX_IMAGE_SIDE / _MAX_IMAGE_ASPECT / _IMAGE_FORMATS (a unit test
# keeps the two equal); the Triton models read the same names from their config.pbtxt
# ``parameters`` or their environment (fusion_model/serving.py image_limits_from).
DEFAULT_IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")
# Names Pillow (or people) use for an allowed format: MPO is a multi-picture JPEG (phone cameras),
# decoded as its first picture like any JPEG.
_FORMAT_ALIASES = {"JPG": "JPEG", "MPO": "JPEG", "DIB": "BMP", "TIF": "TIFF"}


# ImageLimits field <- its name as a settings field, environment variable (BABELWATCH_ + upper) and
# Triton model-config parameter
IMAGE_LIMIT_FIELDS = {"max_image_pixels": "max_pixels", "max_image_side": "max_side",
                      "max_image_aspect": "max_aspect", "image_formats": "formats"}


def _format_name(name: str) -> str:
    name = name.strip().upper()
    return _FORMAT_ALIASES.get(name, name)


@dataclass(frozen=True)
class ImageLimits:
    """What an image may be, judged from its header alone (Pillow's ``Image.open`` reads only the
    header; no pixel is decoded before these pass).

    max_pixels: width x height. The model sees 224 x 224 (50 kpx). 2048 x 2048 (4 Mi px) is the
      largest size social platforms and news sites serve by default and decodes and resizes in tens
      of milliseconds; the 50 Mpx the artifact allowed let a 190 KB 7000 x 7000 PNG cost seconds of
      CPU and ~0.8 GB. The artifact's own ``max_pixels`` still applies when it is stricter.
    max_side: longest side, pixels (with max_pixels and max_aspect: at most 8192 x 512).
    max_aspect: longest side / shortest side. 20:1 keeps tall infographics and panoramas and refuses
      1 x N strips (1 x 10,000,000 overflowed the resize before).
    formats: Pillow format names that are decoded. Others (TIFF, PSD, ICO, EPS, PDF, JPEG 2000,
      HEIF/AVIF, SVG, ...) are refused from their magic bytes and never reach a decoder: the five
      defaults cover what the web serves, and every extra decoder is attack surface (EPS runs
      Ghostscript, TIFF and JPEG 2000 have long CVE histories).
    """

    max_pixels: int = 4_194_304
    max_side: int = 8192
    max_aspect: float = 20.0
    formats: tuple[str, ...] = DEFAULT_IMAGE_FORMATS

    def __post_init__(self) -> None:
        formats = self.formats.split(",") if isinstance(self.formats, str) else list(self.formats)
        names = tuple(dict.fromkeys(_format_name(f) for f in formats if str(f).strip()))
        object.__setattr__(self, "formats", names)
        if int(self.max_pixels) < 1 or int(self.max_side) < 1:
            raise ValueError(f"max_pixels and max_side must be >= 1 (got {self.max_pixels}, {self.max_side})")
        if not float(self.max_aspect) >= 1.0:  # also refuses NaN
            raise ValueError(f"max_aspect must be >= 1 (got {self.max_aspect})")

    @classmethod
    def from_mapping(cls, values, base: "ImageLimits | None" = None) -> "ImageLimits":
        """Override ``base`` (default: the defaults) with the entries of ``values`` named as the
        settings are (``max_image_pixels``, ``max_image_side``, ``max_image_aspect``,
        ``image_formats``, a comma-separated list); None or "" leave a value as it was."""
        base = base or cls()
        kw = {}
        for key, attr in IMAGE_LIMIT_FIELDS.items():
            v = values.get(key)
            if v is None or (isinstance(v, str) and not v.strip()):
                continue
            if attr in ("max_pixels", "max_side"):
                kw[attr] = int(str(v).strip().replace("_", ""))
            elif attr == "max_aspect":
                kw[attr] = float(v)
            else:
                kw[attr] = v
        return replace(base, **kw)

    @classmethod
    def from_env(cls, env, prefix: str = "BABELWATCH_", base: "ImageLimits | None" = None) -> "ImageLimits":
        """From environment variables ``BABELWATCH_MAX_IMAGE_PIXELS`` etc."""
        return cls.from_mapping({k: env.get(prefix + k.upper()) for k in IMAGE_LIMIT_FIELDS}, base)

    @classmethod
    def from_settings(cls, settings) -> "ImageLimits":
        """From a ``contracts.settings.Settings`` (any object with the four attributes)."""
        return cls.from_mapping({k: getattr(settings, k, None) for k in IMAGE_LIMIT_FIELDS})

    def capped(self, max_pixels: int | None) -> "ImageLimits":
        """These limits with ``max_pixels`` lowered to the given one when that is stricter."""
        if max_pixels is None or int(max_pixels) >= self.max_pixels:
            return self
        return replace(self, max_pixels=int(max_pixels))

    def size_problem(self, width: int, height: int) -> str | None:
        """Why an image of ``width`` x ``height`` is refused, or None."""
        w, h = int(width), int(height)
        if w <= 0 or h <= 0:
            return f"image has no pixels ({w}x{h})"
        if max(w, h) > self.max_side:
            return f"image too large: {w}x{h} (longest side limit {self.max_side} px)"
        if w * h > self.max_pixels:
            return f"image too large: {w}x{h} = {w * h} pixels (limit {self.max_pixels})"
        if max(w, h) / min(w, h) > self.max_aspect:
            return f"image aspect ratio too extreme: {w}x{h} (limit {self.max_aspect:g}:1)"
        return None


# Magic bytes of formats Pillow is NOT asked to open, so that a refusal can name the format.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"),
    (b"8BPS", "PSD"), (b"icns", "ICNS"),
    (b"%!PS", "EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"), (b"%PDF", "PDF"), (b"\xff\x4f\xff\x51", "JPEG2000"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"), (b"\xff\x0a", "JXL"), (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JXL"),
    (b"DDS ", "DDS"), (b"qoif", "QOI"), (b"\xd7\xcd\xc6\x9a", "WMF"), (b"SIMPLE  =", "FITS"),
    (b"/* XPM */", "XPM"), (b"#define", "XBM"), (b"<svg", "SVG"), (b"<?xml", "XML/SVG"),
)
_FTYP_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIF", b"heix": "HEIF", b"hevc": "HEIF",
                b"heim": "HEIF", b"heis": "HEIF", b"mif1": "HEIF", b"msf1": "HEIF"}


def sniff_format(data: bytes) -> str | None:
    """The image format named by the first bytes (no decoder involved), or None when unknown."""
    head = bytes(data[:32])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12], "ISO-BMFF")
    if len(head) >= 3 and head[:1] == b"P" and head[1:2] in b"1234567" and head[2:3] in b" \t\r\n":
        return "PPM"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:2] == b"\x00\x00" and head[2:4] in (b"\x01\x00", b"\x02\x00") and head[4:6] != b"\x00\x00":
        return "ICO" if head[2] == 1 else "CUR"  # reserved, type, image count >= 1 (TGA has 0 there)
    return None


_PNG_TEXT_MEMORY = 4 * 1024 * 1024


def _harden_pillow() -> None:
    """Pillow's PNG plugin inflates text chunks (zTXt, iTXt) while OPENING a file, up to 64 MB per
    image by default: a 210 KB PNG of zTXt chunks cost 0.2 s and 64 MB before any pixel. Nothing
    here reads PNG text, so this process allows 4 MB (a PNG with more is refused)."""
    from PIL import PngImagePlugin

    if PngImagePlugin.MAX_TEXT_MEMORY > _PNG_TEXT_MEMORY:
        PngImagePlugin.MAX_TEXT_MEMORY = _PNG_TEXT_MEMORY


def _pillow_formats(formats: tuple[str, ...]) -> list[str]:
    """The allowed formats this Pillow can open (a name it does not know is skipped, not an error)."""
    from PIL import Image

    Image.init()
    return [f for f in formats if f in Image.OPEN]


def _open_checked(data, limits: ImageLimits):
    """Raw bytes -> an opened (header read, not decoded) ``PIL.Image`` within ``limits``;
    ImageDecodeError with the reason otherwise."""
    from PIL import Image, UnidentifiedImageError

    if data is None or (isinstance(data, (bytes, bytearray, memoryview)) and len(data) == 0):
        raise ImageDecodeError("empty image: 0 bytes")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageDecodeError(f"image must be bytes, got {type(data).__name__}")
    raw = bytes(data)
    allowed = ", ".join(limits.formats) or "none"
    _harden_pillow()
    try:
        # only the allowed formats' plugins look at the bytes: no other decoder is ever tried
        im = Image.open(io.BytesIO(raw), formats=_pillow_formats(limits.formats))
    except UnidentifiedImageError:
        fmt = sniff_format(raw)
        if fmt is not None and fmt not in limits.formats:
            raise ImageDecodeError(f"image format {fmt} not allowed (allowed: {allowed})") from None
        if fmt is not None:
            raise ImageDecodeError(f"corrupt or truncated image: unreadable {fmt} header ({len(raw)} bytes)") from None
        raise ImageDecodeError(f"not a decodable image ({len(raw)} bytes, starts {raw[:8]!r})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageDecodeError(f"image too large: {e}") from None
    except Exception as e:  # a plugin choking on a malformed header
        raise ImageDecodeError(f"corrupt or truncated image header ({len(raw)} bytes): {type(e).__name__}: {e}") from None
    fmt = _format_name(im.format or "")
    problem = None
    if fmt not in limits.formats:
        problem = f"image format {im.format} not allowed (allowed: {allowed})"
    else:
        problem = limits.size_problem(*im.size)
    if problem is not None:
        im.close()
        raise ImageDecodeError(problem)
    return im


def check_image_header(data: bytes, limits: ImageLimits | None = None) -> str | None:
    """Why ``data`` is refused as an image, judged from its header only (milliseconds, no pixel
    decoded): empty, not an image, a format not in ``limits.formats``, or a size, side or aspect
    ratio beyond the limits. None when the header passes (decoding may still find it corrupt)."""
    try:
        im = _open_checked(data, limits or ImageLimits())
    except ImageDecodeError as e:
        return str(e)
    except Exception as e:  # never raises: the reason is the answer
        return f"unreadable image header: {type(e).__name__}: {e}"
    im.close()
    return None


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
    # the artifact's own pixel ceiling (preprocess.json); the runtime ImageLimits apply when stricter
    max_pixels: int = 50_000_000

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
JPEG_DRAFT_SIZE = (512, 512)  # JPEG: decode at 1/2..1/8 scale, never below this (>= 2x the 256 resize)
REDUCING_GAP = 3.0  # Pillow: >= 3 is "indistinguishable from fair resampling in most cases"


def decode_image(data: bytes, limits: ImageLimits | None = None):
    """Raw bytes -> an RGB ``PIL.Image``; raises ImageDecodeError with the reason when it cannot.

    The header is checked first (``limits``: format, size, side, aspect ratio). Decoding then:
    JPEG at a reduced scale (``draft``), animations as their first frame only, EXIF orientation
    applied, transparency composited on white. Every failure is an ImageDecodeError.
    """
    from PIL import Image, ImageOps

    limits = limits or ImageLimits()
    im = _open_checked(data, limits)
    n = len(data)
    try:
        if im.format in ("JPEG", "MPO"):
            im.draft("RGB", JPEG_DRAFT_SIZE)
        im.load()  # the first frame only: an animation is never seeked
        problem = limits.size_problem(*im.size)  # what was decoded is what the header said, or less
        if problem is not None:
            raise ImageDecodeError(problem)
        try:
            im = ImageOps.exif_transpose(im)
        except Exception:  # a corrupt EXIF block costs the orientation, not the image
            pass
        if im.mode in ("RGBA", "LA", "P") and ("transparency" in im.info or im.mode != "P"):
            rgba = im.convert("RGBA")
            bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            im = Image.alpha_composite(bg, rgba)
        return im.convert("RGB")
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageDecodeError(f"image too large: {e}") from None
    except MemoryError:
        raise ImageDecodeError(f"image too large to decode: out of memory ({n} bytes)") from None
    except Exception as e:
        raise ImageDecodeError(f"corrupt or truncated image ({n} bytes): {type(e).__name__}: {e}") from None


def image_to_array(im, cfg: ImagePreprocessConfig) -> np.ndarray:
    """An RGB PIL image -> float32 [3, crop, crop].

    ``shortest_edge`` resizes only the region the center crop keeps (``resize(box=...)``), so the
    work and memory are those of a ``crop`` x ``crop`` output whatever the input's shape; big
    inputs are first reduced by an integer factor (``reducing_gap``), as fair as a full resample.
    """
    resample = _RESAMPLE[cfg.resample]
    if cfg.mode == "shortest_edge":
        w, h = im.size
        s = cfg.size / min(w, h)
        nw, nh = max(cfg.crop, round(w * s)), max(cfg.crop, round(h * s))
        left, top = (nw - cfg.crop) // 2, (nh - cfg.crop) // 2
        sx, sy = w / nw, h / nh  # resized -> source coordinates
        box = (left * sx, top * sy, (left + cfg.crop) * sx, (top + cfg.crop) * sy)
        im = im.resize((cfg.crop, cfg.crop), resample, box=box, reducing_gap=REDUCING_GAP)
    elif cfg.mode == "exact":
        im = im.resize((cfg.crop, cfg.crop), resample, reducing_gap=REDUCING_GAP)
    else:
        raise ValueError(f"unknown image resize mode {cfg.mode!r}")
    a = np.asarray(im, dtype=np.float32)
    if a.shape != (cfg.crop, cfg.crop, 3):
        raise ImageDecodeError(f"image resized to {a.shape}, expected ({cfg.crop}, {cfg.crop}, 3)")
    if cfg.rescale != 1.0:
        a = a * np.float32(cfg.rescale)
    a = (a - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def preprocess_image(data: bytes, cfg: ImagePreprocessConfig, limits: ImageLimits | None = None) -> np.ndarray:
    """Raw image bytes -> float32 [3, crop, crop]; ImageDecodeError when refused or undecodable.
    ``limits`` (default: the defaults) apply, lowered to the artifact's ``cfg.max_pixels``."""
    return image_to_array(decode_image(data, (limits or ImageLimits()).capped(cfg.max_pixels)), cfg)


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
        ids, mask, has_text, _ = self.encode(texts)
        return ids, mask, has_text

    def encode(self, texts: Sequence[str | bytes | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str | None]]:
        """Like ``__call__``, plus per row why its text was dropped (None: kept). A text that cannot
        be cleaned or tokenized fails only its row, which goes on as "no text"."""
        errors: list[str | None] = [None] * len(texts)
        cleaned = []
        for i, t in enumerate(texts):
            try:
                cleaned.append(clean_text(t))
            except Exception as e:
                cleaned.append("")
                errors[i] = f"unreadable text: {type(e).__name__}: {e}"
        try:
            encs = self.tokenizer.encode_batch([self.prefix + t for t in cleaned], add_special_tokens=True)
        except Exception:  # one row broke the batch: tokenize row by row to find it
            encs = []
            for i, t in enumerate(cleaned):
                try:
                    encs.append(self.tokenizer.encode(self.prefix + t, add_special_tokens=True))
                except Exception as e:
                    encs.append(None)
                    cleaned[i] = ""
                    errors[i] = f"tokenizer failed: {type(e).__name__}: {e}"
        has_text = np.array([bool(t) for t in cleaned], dtype=bool)
        T = max([len(e.ids) for e in encs if e is not None] + [1])
        ids = np.full((len(encs), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), T), dtype=np.int64)
        for i, e in enumerate(encs):
            if e is None:
                continue
            n = len(e.ids)
            ids[i, :n] = e.ids
            if has_text[i]:
                mask[i, :n] = 1
        return ids, mask, has_text, errors


# --------------------------------------------------------------------------- both
@dataclass
class Batch:
    """The ONNX feeds for one batch plus what the server reports back per row."""

    feeds: dict[str, np.ndarray]
    has_text: np.ndarray  # bool [B]
    has_image: np.ndarray  # bool [B]
    image_errors: list[str | None] = field(default_factory=list)  # per row: why an image was dropped
    text_errors: list[str | None] = field(default_factory=list)  # per row: why a text was dropped

    @property
    def modalities(self) -> np.ndarray:
        """int32 [B]: bit 1 = text used, bit 2 = image used (the served MODALITIES output)."""
        return (self.has_text.astype(np.int32) * 1 + self.has_image.astype(np.int32) * 2).astype(np.int32)

    @property
    def row_errors(self) -> list[str | None]:
        """Per row: None, or what was dropped and why, ``"image: <why>"`` and/or ``"text: <why>"``
        (joined with "; "). The row was still scored on what was left (the served ERROR output)."""
        n = len(self.has_text)
        img = self.image_errors or [None] * n
        txt = self.text_errors or [None] * n
        out = []
        for ie, te in zip(img, txt):
            parts = [p for p in (("text: " + te) if te else None, ("image: " + ie) if ie else None) if p]
            out.append("; ".join(parts) or None)
        return out


class Preprocessor:
    """Texts + image bytes -> ONNX feeds, from an artifact directory's ``preprocess.json``.

    Per-row isolation: any failure while checking, decoding, resizing or normalising an image
    (refused header, corrupt data, OverflowError, MemoryError, decompression bombs, ...) or while
    cleaning or tokenizing a text drops that input of that row only, with the reason in
    ``Batch.image_errors`` / ``text_errors``; the row is still scored on what is left.
    ``limits`` (default ImageLimits()) apply, lowered to the artifact's own ``max_pixels`` when that
    is stricter.
    """

    def __init__(self, text: TextTokenizer, image: ImagePreprocessConfig, limits: ImageLimits | None = None) -> None:
        self.text = text
        self.image = image
        self.limits = (limits or ImageLimits()).capped(image.max_pixels)

    @classmethod
    def from_dir(cls, artifact_dir: str | Path, limits: ImageLimits | None = None) -> "Preprocessor":
        d = Path(artifact_dir)
        cfg = json.loads((d / PREPROCESS_FILE).read_text(encoding="utf-8"))
        t = cfg["text"]
        text = TextTokenizer.from_file(d / t["tokenizer_file"], max_length=int(t["max_length"]),
                                       prefix=t.get("prefix", ""), pad_id=int(t["pad_id"]))
        return cls(text, ImagePreprocessConfig.from_dict(cfg["image"]), limits)

    def image_array(self, data: bytes) -> np.ndarray:
        """One image -> float32 [3, crop, crop]; ImageDecodeError (with the reason) on any failure."""
        c = self.image.crop
        try:
            a = image_to_array(decode_image(data, self.limits), self.image)
            if a.shape != (3, c, c) or not np.isfinite(a).all():
                raise ImageDecodeError(f"preprocessing gave {a.shape} {a.dtype} with non-finite values")
            return a
        except ImageDecodeError:
            raise
        except MemoryError:
            raise ImageDecodeError("image too large to preprocess: out of memory") from None
        except Exception as e:  # resize, crop, normalisation: whatever it is, this row only
            raise ImageDecodeError(f"image preprocessing failed: {type(e).__name__}: {e}") from None

    def __call__(self, texts: Sequence[str | bytes | None], images: Iterable[bytes | None] | None = None) -> Batch:
        ids, mask, has_text, text_errors = self.text.encode(texts)
        B = len(texts)
        imgs = list(images) if images is not None else [None] * B
        if len(imgs) != B:
            raise ValueError(f"{B} texts but {len(imgs)} images")
        arrays, has_image, errors = [], np.zeros(B, dtype=bool), [None] * B
        for i, data in enumerate(imgs):
            try:
                if data is None or len(data) == 0:  # "" is "no image" on the wire
                    continue
                arrays.append(self.image_array(data))
                has_image[i] = True
            except Exception as e:  # ImageDecodeError, or anything else: this row only
                errors[i] = str(e) if isinstance(e, ImageDecodeError) else f"{type(e).__name__}: {e}"
        c = self.image.crop
        pixels = np.stack(arrays).astype(np.float32) if arrays else np.zeros((0, 3, c, c), np.float32)
        feeds = {"input_ids": ids, "attention_mask": mask, "pixel_values": pixels,
                 "has_image": has_image.astype(np.float32)}
        return Batch(feeds, has_text, has_image, errors, text_errors)
