"""The demo's sample stream, ``sample_events.jsonl``, made from the data in ``sample_source.json``.

The data: realistic (but fictional) financial headlines and social posts written natively in
English, Chinese (simplified), Japanese, Spanish, French and German, a few in Italian and
Portuguese (``texts``: per main language 6 topics x 2 positive, 2 negative, 2 neutral, plus 4
extra; ``burst_texts``: one Tesla story, a recall and a fatal-crash probe, in every language, mostly
negative), the outlets and users quoted in ``meta``, and raw ``invalid_lines``, each breaking one
rule of ``contracts.schema.Event`` (apart from the missing ts, which the replayer adds).

The file: one raw Kafka payload per line, byte-identical on every run (fixed seed, stable order):
regular events on all six topics, spread so each topic keeps a steady rate; the burst as one block
(``meta.burst``, sent back to back by the replayer) after about 60 % of the lines; the invalid
lines (ids ``bad-*``) scattered over the regular part. Events carry no ``ts`` (the replayer stamps
it); ``lang`` is on about half of each language's events, the rest must be detected; every valid
event has ``meta.expected`` (intended label) and ``meta.true_lang``; some carry small chart PNGs.

    python -m babelwatch.demo.sample_source [OUTPUT_PATH]
"""
from __future__ import annotations

import base64
import json
import random
import struct
import sys
import zlib
from pathlib import Path

from fusion_model.corpora import SAMPLE_EVENTS

SEED = 20240611
DEFAULT_OUTPUT = SAMPLE_EVENTS
SOURCE = Path(__file__).with_name("sample_source.json")

TOPICS: tuple[str, ...] = ("AAPL", "TSLA", "NVDA", "BTC", "Airbus", "Toyota")
BURST_AT = 0.6  # the burst block starts after this fraction of the file's lines
N_IMAGES_REGULAR = 21
N_IMAGES_BURST = 4
IMAGE_SIZE = 32
MAX_IMAGE_B64 = 4096


def load_source(path: Path = SOURCE) -> dict:
    """texts and burst_texts (lang, topic, source, expected, text), outlets and users per language,
    invalid_lines (breaks, line)."""
    return json.loads(path.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# Tiny PNG images (standard library only)
# --------------------------------------------------------------------------------------------

def _png(width: int, height: int, pixel) -> bytes:
    """Encode an 8-bit RGB PNG; ``pixel(x, y)`` returns an (r, g, b) tuple."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    raw = bytearray()
    for y in range(height):
        raw.append(0)  # filter type: None
        for x in range(width):
            raw.extend(bytes(pixel(x, y)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b"")


_WHITE = (250, 250, 250)
_GRID = (225, 225, 225)
_GREEN = (22, 163, 74)
_RED = (220, 38, 38)
_BRAND = ((0, 113, 227), (232, 33, 39), (118, 185, 0), (247, 147, 26), (0, 32, 91), (235, 10, 30))


def _line_chart(points: list[int], colour) -> bytes:
    """White background, light grid, a 2-px polyline through ``points`` (one y per x)."""
    n = IMAGE_SIZE

    def pixel(x: int, y: int):
        y0 = points[x]
        y1 = points[min(x + 1, n - 1)]
        lo, hi = min(y0, y1), max(y0, y1)
        if lo - 1 <= y <= hi:
            return colour
        if x % 8 == 0 or y % 8 == 0:
            return _GRID
        return _WHITE

    return _png(n, n, pixel)


def _bar_chart(heights: list[int], colour) -> bytes:
    n = IMAGE_SIZE
    width = n // len(heights)

    def pixel(x: int, y: int):
        bar, offset = divmod(x, width)
        if bar < len(heights) and 1 <= offset < width - 1 and y >= n - heights[bar]:
            return colour
        return _WHITE

    return _png(n, n, pixel)


def _gradient(top, bottom) -> bytes:
    n = IMAGE_SIZE

    def pixel(x: int, y: int):
        t = y / (n - 1)
        return tuple(round(a + (b - a) * t) for a, b in zip(top, bottom))

    return _png(n, n, pixel)


def _solid(colour) -> bytes:
    return _png(IMAGE_SIZE, IMAGE_SIZE, lambda x, y: colour)


def _walk(rng: random.Random, drift: float) -> list[int]:
    """A random walk of IMAGE_SIZE y-coordinates (0 = top), trending by ``drift`` per step."""
    n = IMAGE_SIZE
    y = n * 0.5 + drift * n * -0.5
    out = []
    for _ in range(n):
        y = min(n - 2.0, max(1.0, y + drift + rng.uniform(-1.2, 1.2)))
        out.append(int(y))
    return out


def make_image(rng: random.Random, expected: str) -> tuple[str, str]:
    """A chart-like picture that matches the intended sentiment; returns (kind, png bytes as b64)."""
    n = IMAGE_SIZE
    if expected == "positive":
        if rng.random() < 0.5:
            kind, data = "line_up", _line_chart(_walk(rng, -0.6), _GREEN)
        else:
            heights = sorted(rng.randint(6, n - 4) for _ in range(4))
            kind, data = "bars_up", _bar_chart(heights, _GREEN)
    elif expected == "negative":
        if rng.random() < 0.5:
            kind, data = "line_down", _line_chart(_walk(rng, 0.6), _RED)
        else:
            heights = sorted((rng.randint(6, n - 4) for _ in range(4)), reverse=True)
            kind, data = "bars_down", _bar_chart(heights, _RED)
    else:
        roll = rng.random()
        if roll < 0.4:
            kind, data = "line_flat", _line_chart(_walk(rng, 0.0), (100, 116, 139))
        elif roll < 0.7:
            kind, data = "gradient", _gradient(rng.choice(_BRAND), _WHITE)
        else:
            kind, data = "solid", _solid(rng.choice(_BRAND))
    b64 = base64.b64encode(data).decode("ascii")
    assert len(b64) < MAX_IMAGE_B64, (kind, len(b64))
    return kind, b64


# --------------------------------------------------------------------------------------------
# Stream assembly
# --------------------------------------------------------------------------------------------

def _spread_by_topic(rng: random.Random, rows: list[dict]) -> list[dict]:
    """Order rows so every topic appears at a steady rate over the whole sequence."""
    keyed = []
    for t_index, topic in enumerate(TOPICS):
        items = [r for r in rows if r["topic"] == topic]
        rng.shuffle(items)
        for i, row in enumerate(items):
            keyed.append(((i + rng.uniform(0.1, 0.9)) / len(items), t_index, row))
    keyed.sort(key=lambda k: (k[0], k[1]))
    return [k[2] for k in keyed]


def build_lines(seed: int = SEED, source: dict | None = None) -> list[str]:
    """All lines of the sample stream, in order, without trailing newlines."""
    data = source or load_source()
    rng = random.Random(seed)
    regular = _spread_by_topic(rng, [dict(r, burst=False) for r in data["texts"]])
    burst = [dict(r, burst=True) for r in data["burst_texts"]]
    rng.shuffle(burst)
    rows = regular + burst

    # lang on about half of each language's events (languages in the data's order: the draws follow it)
    tagged: set[int] = set()
    for lang in dict.fromkeys(r["lang"] for r in data["texts"] + data["burst_texts"]):
        idx = [i for i, r in enumerate(rows) if r["lang"] == lang]
        tagged.update(rng.sample(idx, (len(idx) + 1) // 2))

    # small inline images
    with_image = set(rng.sample(range(len(regular)), N_IMAGES_REGULAR))
    with_image.update(len(regular) + i for i in rng.sample(range(len(burst)), N_IMAGES_BURST))

    events: list[dict] = []
    for i, row in enumerate(rows):
        lang = row["lang"]
        ev: dict = {"id": "", "source": row["source"], "topic": row["topic"]}
        if i in tagged:
            ev["lang"] = lang
        ev["text"] = row["text"]
        meta: dict = {}
        if row["source"] == "news":
            meta["outlet"] = rng.choice(data["outlets"][lang])
        else:
            meta["user"] = rng.choice(data["users"][lang])
        meta["expected"] = row["expected"]
        meta["true_lang"] = lang
        if row["burst"]:
            meta["burst"] = True
        if i in with_image:
            kind, b64 = make_image(rng, row["expected"])
            ev["image_b64"] = b64
            meta["image_kind"] = kind
        ev["meta"] = meta
        events.append(ev)

    regular_events, burst_events = events[: len(regular)], events[len(regular):]

    # invalid lines: one per equal slice of the regular part, never at the very start
    body: list = list(regular_events)
    invalid = [x["line"] for x in data["invalid_lines"]]
    n_bad = len(invalid)
    slice_len = len(regular_events) // n_bad
    positions = [k * slice_len + rng.randrange(1, slice_len) for k in range(n_bad)]
    for pos, bad in sorted(zip(positions, invalid), reverse=True):
        body.insert(pos, bad)

    # the burst block goes after about BURST_AT of the whole file
    total = len(body) + len(burst_events)
    cut = round(total * BURST_AT)
    ordered = body[:cut] + burst_events + body[cut:]

    lines: list[str] = []
    counter = 0
    for item in ordered:
        if isinstance(item, str):
            lines.append(item)
            continue
        counter += 1
        item["id"] = f"ev-{counter:04d}"
        lines.append(json.dumps(item, ensure_ascii=False, separators=(", ", ": ")))
    return lines


def main(output: str | Path | None = None) -> Path:
    """Write the sample stream (UTF-8, one payload per line) and return its path."""
    path = Path(output) if output is not None else DEFAULT_OUTPUT
    lines = build_lines()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    written = main(sys.argv[1] if len(sys.argv) > 1 else None)
    print(f"wrote {written}")
