"""Hostile and odd images, made in memory: PNGs of any declared size written straight with zlib
(a 7000 x 7000 RGBA PNG of zeros is ~190 KB and never exists as pixels here), plus small real
images of each format through Pillow. Shared by the image-guard unit tests and the serving tests."""
from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache

_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel (8-bit)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


@lru_cache(maxsize=None)
def png(width: int, height: int, color_type: int = 2, truncate_at: int | None = None) -> bytes:
    """A valid PNG of ``width`` x ``height`` zero pixels (colour type 0 gray, 2 RGB, 6 RGBA), its
    IDAT compressed row by row so no full-size buffer is ever built. ``truncate_at``: cut the
    file after that many bytes (a truncated download)."""
    row = b"\x00" * (1 + width * _CHANNELS[color_type])  # filter byte + samples
    z = zlib.compressobj(9)
    parts = []
    rows_per_call = max(1, (1 << 20) // len(row))
    left = height
    while left:
        n = min(rows_per_call, left)
        parts.append(z.compress(row * n))
        left -= n
    parts.append(z.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")
    return data[:truncate_at] if truncate_at is not None else data


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width`` x ``height`` with a tiny IDAT: a decompression bomb's
    header (Pillow itself refuses > 179 Mpx at open)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _chunk(b"IEND", b""))


def encoded(fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB", **save) -> bytes:
    """A small real image in ``fmt`` (any format Pillow writes: PNG, JPEG, GIF, WEBP, BMP, TIFF,
    ICO, PPM, TGA...)."""
    from PIL import Image

    im = Image.new(mode, size, (200, 40, 40) if mode == "RGB" else None)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def animated_gif(frames: int = 5, size: tuple[int, int] = (64, 64)) -> bytes:
    from PIL import Image

    ims = [Image.new("RGB", size, (i * 40 % 256, 80, 160)) for i in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, format="GIF", save_all=True, append_images=ims[1:], duration=50, loop=0)
    return buf.getvalue()


def image_traps() -> list[tuple[str, bytes, str]]:
    """(name, image bytes, the start of the row's ERROR) for every image trap; all in one request."""
    return [
        ("1x10,000,000 PNG", png(1, 10_000_000), "image: image too large: 1x10000000"),
        ("1x1,000,000 PNG", png(1, 1_000_000), "image: image too large: 1x1000000"),
        ("7000x7000 RGBA PNG", png(7000, 7000, 6), "image: image too large: 7000x7000 = 49000000 pixels"),
        ("decompression bomb 15000x15000 PNG", png(15000, 15000, 0), "image: image too large"),
        ("bomb header 100000x100000", png_header_only(100_000, 100_000), "image: image too large"),
        ("aspect 100x2100", png(100, 2100), "image: image aspect ratio too extreme"),
        ("truncated PNG", png(640, 480, truncate_at=300), "image: corrupt or truncated image"),
        ("TIFF", encoded("TIFF"), "image: image format TIFF not allowed"),
        ("ICO", encoded("ICO"), "image: image format ICO not allowed"),
        ("not an image", b"\x89PNG this is not really a png", "image: not a decodable image"),
    ]
