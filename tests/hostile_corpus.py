"""A corpus of hostile and odd inputs for the events topic, generated in code (no binary files).

Every case is one Kafka record value (``None``: a tombstone) and the outcome the system owes it:

- ``SCORED``  in the scored topic exactly once, not late;
- ``DEAD``    in the dead-letter topic exactly once, with a non-empty reason (``reasons``: the
              accepted ones where the contract names them; ``None``: any);
- ``LATE``    scored exactly once AND in the late topic exactly once (older than its topic's
              watermark: counted in no window, never silent);
- ``DEAD_OR_SCORED`` either of the first two, where both are a defensible contract (a BOM before
              the JSON, a TIFF, an animated GIF, ...): it must still be accounted for exactly once.

``check`` (optional) inspects a scored record and returns what is wrong with it, or None.

Images are made with Pillow, or by hand where Pillow would need the pixels in memory: a PNG of
1 x 10,000,000 pixels is a zlib stream of zero rows (~20 KB), its header tells the truth.

Used by ``tests/drills/test_adversarial.py``; ``python -m tests.hostile_corpus`` lists the
cases with their sizes and expected outcomes.
"""
from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable
try:
    from bw_factories import TEXTS
except ModuleNotFoundError:  # run as `python -m tests.hostile_corpus` from the repository
    from tests.bw_factories import TEXTS

SCORED = "scored"
DEAD = "dead"
LATE = "late"
DEAD_OR_SCORED = "dead_or_scored"

# reasons the README documents for input that is invalid as such
NOT_JSON = frozenset({"not_json"})
NOT_OBJECT = frozenset({"not_object"})
INVALID = frozenset({"invalid_event"})
TOO_LARGE = frozenset({"too_large"})
# an image the model cannot (or must not) decode: refused at validation (header checks), by the
# model's per-row error, or found as the culprit of a failed batch
BAD_IMAGE = frozenset({"invalid_event", "invalid_image", "scoring_failed"})
# an event dated too far in the future: its own reason, or a field error of the event
FUTURE = frozenset({"invalid_event", "future_timestamp", "future_ts", "too_far_in_future", "ts_in_future"})

VALID_TOPICS = ("ADV-A", "ADV-B")
MAX_TEXT_CHARS = 10_000  # Limits.max_text_chars, the default the suite runs with
MAX_EVENT_BYTES = 2_000_000  # Settings.max_event_bytes
MAX_IMAGE_BYTES = 1_000_000  # Settings.max_image_bytes



@dataclass(frozen=True)
class Case:
    name: str
    payload: bytes | None  # the record value; None = a Kafka tombstone (null value)
    expect: str
    event_id: str | None = None  # the id a scored record of this input carries
    reasons: frozenset[str] | None = None  # accepted dead-letter reasons (None: any non-empty)
    check: Callable[[dict], str | None] | None = None  # on the scored record: what is wrong, or None
    note: str = ""

    @property
    def size(self) -> int:
        return 0 if self.payload is None else len(self.payload)


# ------------------------------------------------------------------------------------- images
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_of_zeros(width: int, height: int, color_type: int = 0, bit_depth: int = 8,
                 extra_chunks: bytes = b"") -> bytes:
    """A well-formed PNG of ``width`` x ``height`` zero pixels, compressed row by row: the file
    stays small whatever the dimensions (1 x 10,000,000 gray: ~20 KB; 7000 x 7000 RGBA: ~190 KB)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row = b"\x00" + bytes((width * channels * bit_depth + 7) // 8)  # filter byte 0 + the pixels
    comp = zlib.compressobj(9)
    parts, step = [], max(1, (1 << 20) // len(row))
    for start in range(0, height, step):
        parts.append(comp.compress(row * min(step, height - start)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    plte = _chunk(b"PLTE", b"\x00\x00\x00" * 2) if color_type == 3 else b""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + plte + extra_chunks
            + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b""))


def _pil(save: Callable[[io.BytesIO], None]) -> bytes:
    buf = io.BytesIO()
    save(buf)
    return buf.getvalue()


def small_image(fmt: str = "PNG", mode: str = "RGB", size: tuple[int, int] = (64, 64), **kw) -> bytes:
    from PIL import Image

    color = {"RGB": (200, 30, 30), "RGBA": (200, 30, 30, 128), "CMYK": (0, 200, 200, 0), "L": 128,
             "I;16": 30000, "P": 3}[mode]
    im = Image.new(mode, size, color)
    if mode == "P":
        im.info["transparency"] = 0
    return _pil(lambda b: im.save(b, format=fmt, **kw))


def animated_gif(frames: int = 3, size: tuple[int, int] = (32, 32)) -> bytes:
    from PIL import Image

    ims = [Image.new("P", size, i * 40) for i in range(frames)]
    return _pil(lambda b: ims[0].save(b, format="GIF", save_all=True, append_images=ims[1:], duration=50, loop=0))


def jpeg_with_declared_size(width: int, height: int) -> bytes:
    """A real 8 x 8 JPEG whose SOF header is patched to claim ``width`` x ``height``."""
    data = bytearray(small_image("JPEG", size=(8, 8)))
    i = 2
    while i < len(data) - 9:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, i + 5, height, width)
            return bytes(data)
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    raise RuntimeError("no SOF marker in the JPEG")


def png_ztxt_bomb() -> bytes:
    """A valid 8 x 8 PNG with a zTXt chunk that inflates to 64 MB of zeros (~64 KB on the wire)."""
    comp = zlib.compressobj(9)
    blob = b"".join(comp.compress(bytes(1 << 20)) for _ in range(64)) + comp.flush()
    return png_of_zeros(8, 8, color_type=2, extra_chunks=_chunk(b"zTXt", b"Comment\x00\x00" + blob))


def ico_around(png: bytes) -> bytes:
    """An ICO container whose one entry is ``png`` (the directory says 256 x 256)."""
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(png), 22) + png


def gif_with(screen: tuple[int, int] | None = None, frame: tuple[int, int] | None = None) -> bytes:
    """A one-frame GIF whose logical screen and/or first frame claim other dimensions."""
    data = bytearray(animated_gif(frames=1))
    if screen is not None:
        struct.pack_into("<HH", data, 6, *screen)
    if frame is not None:
        i = data.index(b"\x2c", 13)  # the image descriptor
        struct.pack_into("<HH", data, i + 5, *frame)
    return bytes(data)


def bmp_with_declared_size(width: int, height: int) -> bytes:
    data = bytearray(small_image("BMP", size=(8, 8)))
    struct.pack_into("<ii", data, 18, width, height)
    return bytes(data)


def solid_jpeg(width: int, height: int) -> bytes:
    from PIL import Image

    im = Image.new("RGB", (width, height), (120, 130, 140))
    return _pil(lambda b: im.save(b, format="JPEG", quality=50))


def png_lying_idat() -> bytes:
    """IHDR says 64 x 64 gray; the IDAT holds the rows of a 64 x 200,000 image."""
    small = png_of_zeros(64, 64)
    big = png_of_zeros(64, 200_000)
    start = big.index(b"IDAT") - 4
    end = big.index(b"IEND") - 4
    return small[: small.index(b"IDAT") - 4] + big[start:end] + _chunk(b"IEND", b"")


EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n%%EndComments\n"
       b"/Times-Roman findfont 12 scalefont setfont 10 10 moveto (babelwatch) show\nshowpage\n%%EOF\n")
SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
       b'<rect width="64" height="64" fill="red"/></svg>')


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------------------------- scored checks
def has_image(rec: dict) -> str | None:
    return None if "image" in (rec.get("modalities") or []) else f"image not used: modalities {rec.get('modalities')}"


def text_only(rec: dict) -> str | None:
    return None if rec.get("modalities") == ["text"] else f"expected text only, modalities {rec.get('modalities')}"


def image_refused(rec: dict) -> str | None:
    """An image_url that must not be fetched: the event is scored on its text, and says why."""
    if not rec.get("image_error"):
        return "image_url was not refused (no image_error)"
    return text_only(rec)


def lang_is(expected: str) -> Callable[[dict], str | None]:
    def check(rec: dict) -> str | None:
        return None if rec.get("lang") == expected else f"lang {rec.get('lang')!r}, expected {expected!r}"
    return check


def clean_lang(rec: dict) -> str | None:
    """A language that lands in Redis keys and labels: a bare lower-case primary subtag or 'und'."""
    lang = rec.get("lang")
    ok = isinstance(lang, str) and (lang == "und" or (2 <= len(lang) <= 8 and lang.isascii() and lang.isalpha()
                                                       and lang.islower()))
    return None if ok else f"scored with lang {lang!r}"


# ------------------------------------------------------------------------------------- the corpus
def valid_event(event_id: str, i: int, ts: float, topic: str | None = None) -> dict:
    """A plain valid event; half carry lang, half rely on language identification."""
    lang, text = list(TEXTS.items())[i % len(TEXTS)]
    ev = {"id": event_id, "source": "news", "topic": topic or VALID_TOPICS[i % len(VALID_TOPICS)],
          "text": f"{text} ({i})", "ts": ts}
    if i % 2 == 0:
        ev["lang"] = lang
    return ev


def build(now: float, prefix: str = "adv") -> list[Case]:
    """The corpus; ``now`` is the event time of the events meant to be on time."""
    cases: list[Case] = []
    topic = VALID_TOPICS[0]

    def eid(name: str) -> str:
        return f"{prefix}-{name}"

    def ev(name: str, **fields) -> dict:
        base = {"id": eid(name), "source": "social", "topic": topic, "text": TEXTS["en"], "ts": now}
        base.update(fields)
        return {k: v for k, v in base.items() if v is not _DROP}

    def add(name: str, payload: bytes | dict | None, expect: str, reasons=None, check=None, note: str = "",
            event_id: str | None = "auto") -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        if event_id == "auto":  # also for DEAD cases: a wrongly scored one is found by its id
            event_id = eid(name)
        cases.append(Case(name, payload, expect, event_id, reasons, check, note))

    def raw(name: str, template: str, expect: str, reasons=None, **kw) -> None:
        """A hand-written payload: ``template`` with {id} and {ts} filled in, as bytes."""
        add(name, template.replace("{id}", eid(name)).replace("{ts}", repr(now)).encode("utf-8"), expect, reasons, **kw)

    ok = json.dumps(ev("x"))[:-1]  # a valid object without its closing brace

    # ---- not JSON, or not an object -------------------------------------------------------------
    add("truncated_json", ok[: len(ok) // 2].encode(), DEAD, NOT_JSON)
    add("unquoted_keys", b"{id: 1, text: 'hello'}", DEAD, NOT_JSON)
    add("trailing_garbage", json.dumps(ev("trailing_garbage")).encode() + b" xyz", DEAD, NOT_JSON)
    add("two_objects", json.dumps(ev("two_objects")).encode() * 2, DEAD, NOT_JSON)
    add("empty_payload", b"", DEAD, NOT_JSON)
    add("whitespace_payload", b" \n\t ", DEAD, NOT_JSON)
    add("tombstone", None, DEAD, None, note="Kafka record with a null value")
    add("invalid_utf8", json.dumps(ev("invalid_utf8", text="PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"bad \xff\xfe bytes"),
        DEAD, NOT_JSON)
    add("overlong_utf8", json.dumps(ev("overlong_utf8", text="PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"slash \xc0\xaf"),
        DEAD, NOT_JSON)
    add("raw_nul_byte", json.dumps(ev("raw_nul_byte", text="PLACEHOLDER")).encode().replace(b"PLACEHOLDER", b"nul\x00byte"),
        DEAD, NOT_JSON)
    add("bom_before_json", b"\xef\xbb\xbf" + json.dumps(ev("bom_before_json")).encode(), DEAD_OR_SCORED)
    raw("nan_literal", '{"id": "{id}", "source": "x", "topic": "ADV-A", "text": "t", "ts": NaN}', DEAD, NOT_JSON)
    raw("ts_1e400", '{"id": "{id}", "source": "x", "topic": "ADV-A", "text": "t", "ts": 1e400}', DEAD, NOT_JSON | INVALID)
    raw("lone_surrogate", '{"id": "{id}", "source": "x", "topic": "ADV-A", "text": "bad \\ud800 half", "ts": {ts}}',
        DEAD_OR_SCORED, note="a parser that accepts it must not pass an unencodable str on")
    raw("surrogate_pair", '{"id": "{id}", "source": "x", "topic": "ADV-A", "text": "smile \\ud83d\\ude00 good", "ts": {ts}}',
        SCORED)
    deep = "{\"a\": " * 2000 + "1" + "}" * 2000
    raw("deep_nesting_2000", '{"id": "{id}", "source": "x", "topic": "ADV-A", "text": "t", "ts": {ts}, "meta": ' + deep + "}",
        DEAD, NOT_JSON)
    add("deep_nesting_200", ev("deep_nesting_200", meta=json.loads("{\"a\": " * 200 + "1" + "}" * 200)), DEAD_OR_SCORED)
    add("array_of_event", b"[" + json.dumps(ev("array_of_event")).encode() + b"]", DEAD, NOT_OBJECT)
    add("json_string", b'"hello"', DEAD, NOT_OBJECT)
    add("json_number", b"42", DEAD, NOT_OBJECT)
    add("json_null", b"null", DEAD, NOT_OBJECT)
    add("json_true", b"true", DEAD, NOT_OBJECT)
    raw("escaped_key_names", '{"\\u0069d": "{id}", "sour\\u0063e": "x", "topic": "ADV-A", "text": "good", "ts": {ts}}',
        SCORED, note="keys spelled with escapes are the same keys")
    raw("duplicate_text_key", '{"id": "{id}", "source": "x", "topic": "ADV-A", "text": "", "text": "great news", "ts": {ts}}',
        DEAD_OR_SCORED)

    # ---- fields: unknown, missing, wrong types, limits --------------------------------------------
    add("unknown_field", ev("unknown_field", sentiment="positive"), DEAD, INVALID)
    add("missing_id", ev("missing_id", id=_DROP), DEAD, INVALID)
    add("missing_ts", ev("missing_ts", ts=_DROP), DEAD, INVALID)
    add("missing_topic", ev("missing_topic", topic=_DROP), DEAD, INVALID)
    add("missing_source", ev("missing_source", source=_DROP), DEAD, INVALID)
    odd_id = eid("id_odd_chars") + " \u0000\n:*?[x]\u202e🚀"
    add("id_odd_chars", ev("id_odd_chars", id=odd_id), SCORED, event_id=odd_id)
    add("id_int", ev("id_int", id=12345), DEAD, INVALID)
    add("id_empty", ev("id_empty", id=""), DEAD, INVALID)
    add("id_too_long", ev("id_too_long", id="i" * 201), DEAD, INVALID)
    add("text_list", ev("text_list", text=["a", "b"]), DEAD, INVALID)
    add("text_null", ev("text_null", text=None), DEAD, INVALID)
    add("meta_list", ev("meta_list", meta=[1, 2]), DEAD, INVALID)
    add("meta_51_keys", ev("meta_51_keys", meta={f"k{i}": i for i in range(51)}), DEAD, INVALID)
    add("meta_50_keys", ev("meta_50_keys", meta={f"k{i}": i for i in range(50)}), SCORED)
    add("meta_bigint", ev("meta_bigint", meta={"n": 2**70, "m": -(2**70)}), SCORED)
    add("source_with_space", ev("source_with_space", source="news feed"), DEAD, INVALID)
    add("source_trailing_newline", ev("source_trailing_newline", source="news\n"), DEAD, INVALID,
        note="'$' in a Python regex matches before a final newline")
    near = ev("near_max_bytes", meta={"pad": ""})
    near["meta"]["pad"] = "p" * (MAX_EVENT_BYTES - 1000 - len(json.dumps(near)))
    add("near_max_bytes", near, SCORED, note="~1,999,000 bytes: just under BABELWATCH_MAX_EVENT_BYTES")
    over = ev("over_max_bytes", meta={"pad": "p" * (MAX_EVENT_BYTES + 100)})
    add("over_max_bytes", over, DEAD, TOO_LARGE)

    # ---- text ------------------------------------------------------------------------------------
    add("empty_text_no_image", ev("empty_text_no_image", text=""), DEAD, INVALID)
    add("whitespace_text", ev("whitespace_text", text=" \t\n  "), DEAD, INVALID)
    add("unicode_space_text", ev("unicode_space_text", text="\u3000\u2003\u00a0\u2029"), DEAD, INVALID)
    add("control_only_text", ev("control_only_text", text="\u0000\u0007\u001b\u007f"), DEAD_OR_SCORED,
        note="nothing the model can read is left after cleaning")
    add("emoji_only", ev("emoji_only", text="🚀🚀🔥📈💎🙌"), SCORED)
    add("arabic", ev("arabic", text="ارتفعت أسهم الشركة بعد إعلان أرباح قياسية", lang=_DROP), SCORED)
    add("hebrew", ev("hebrew", text="מניות החברה צנחו לאחר פרסום הדוחות", lang="he"), SCORED)
    add("rtl_override", ev("rtl_override", text="profit \u202eTIFORP\u202c warning \u2066isolate\u2069"), SCORED)
    add("mixed_scripts", ev("mixed_scripts", text="Tesla 股价 растёт 急騰 بقوة 🚗 today", lang=_DROP), SCORED)
    add("zalgo", ev("zalgo", text="g" + "\u0301\u0316\u0337\u035c" * 200 + "ood news"), SCORED)
    add("ansi_escapes", ev("ansi_escapes", text="\u001b[31mALERT\u001b[0m shares \u0007crashed\u0008"), SCORED)
    add("escaped_nul_in_text", ev("escaped_nul_in_text", text="shares\u0000rose\u0000sharply"), SCORED)
    add("bom_in_text", ev("bom_in_text", text="\ufeffshares rose \ufeff sharply"), SCORED)
    add("noncharacters", ev("noncharacters", text="shares \uffff\ufffe\U0010ffff\ue000 rose"), SCORED)
    add("text_at_limit_cjk", ev("text_at_limit_cjk", text="涨" * MAX_TEXT_CHARS), SCORED)
    add("text_over_limit", ev("text_over_limit", text="x" * (MAX_TEXT_CHARS + 1)), DEAD, INVALID)
    add("one_huge_token", ev("one_huge_token", text="a" * MAX_TEXT_CHARS), SCORED)
    add("newlines_only", ev("newlines_only", text="\n\r\n\r"), DEAD, INVALID)

    # ---- event time ------------------------------------------------------------------------------
    def iso(delta_s: float = 0.0, offset_min: int = 0, fmt: str | None = None) -> str:
        tz = timezone(timedelta(minutes=offset_min))
        d = datetime.fromtimestamp(now + delta_s, tz)
        return d.strftime(fmt) if fmt else d.isoformat()

    add("ts_negative", ev("ts_negative", ts=-1.0), DEAD, INVALID)
    add("ts_zero", ev("ts_zero", ts=0), DEAD, INVALID)
    add("ts_bool", ev("ts_bool", ts=True), DEAD, INVALID)
    add("ts_null", ev("ts_null", ts=None), DEAD, INVALID)
    add("ts_string_inf", ev("ts_string_inf", ts="inf"), DEAD, INVALID)
    add("ts_string_nan", ev("ts_string_nan", ts="NaN"), DEAD, INVALID)
    add("ts_bigint", ev("ts_bigint", ts=10**30), DEAD, INVALID)
    add("ts_1e10", ev("ts_1e10", ts=1e10), DEAD, INVALID)
    add("ts_iso_invalid", ev("ts_iso_invalid", ts="2026-13-45T99:00:00"), DEAD, INVALID)
    add("ts_year_2255", ev("ts_year_2255", ts=datetime(2255, 1, 1, tzinfo=timezone.utc).timestamp()), DEAD, FUTURE,
        note="accepted, it moves the topic's watermark to 2255: every later event of the topic is late")
    add("ts_plus_1_day", ev("ts_plus_1_day", ts=now + 86_400), DEAD, FUTURE)
    add("ts_iso_2255", ev("ts_iso_2255", ts="2255-06-01T00:00:00Z"), DEAD, FUTURE)
    add("ts_epoch_millis", ev("ts_epoch_millis", ts=int(now * 1000)), DEAD, INVALID | FUTURE,
        note="a producer sending milliseconds")
    raw("ts_exponent", '{"id": "{id}", "source": "x", "topic": "ADV-A", "text": "good", "ts": %.12e}' % now, SCORED)
    add("ts_plus_30s", ev("ts_plus_30s", ts=now + 30), SCORED, note="clock skew of seconds is normal")
    add("ts_numeric_string", ev("ts_numeric_string", ts=repr(now)), DEAD_OR_SCORED)
    add("ts_iso_plus14", ev("ts_iso_plus14", ts=iso(offset_min=14 * 60)), SCORED)
    add("ts_iso_odd_offset_micro", ev("ts_iso_odd_offset_micro", ts=iso(offset_min=-(3 * 60 + 30))), SCORED)
    add("ts_iso_offset_2359", ev("ts_iso_offset_2359", ts=iso(offset_min=23 * 60 + 59)), SCORED)
    add("ts_iso_z", ev("ts_iso_z", ts=iso(fmt="%Y-%m-%dT%H:%M:%S.%fZ")), SCORED)
    add("ts_iso_naive", ev("ts_iso_naive", ts=iso(fmt="%Y-%m-%dT%H:%M:%S")), SCORED, note="no offset: UTC")
    add("ts_1970", ev("ts_1970", ts=1.0), LATE)
    add("ts_tiny_positive", ev("ts_tiny_positive", ts=1e-300), LATE)
    add("ts_2001_iso", ev("ts_2001_iso", ts="2001-09-09T01:46:40+00:00"), LATE)
    add("ts_one_hour_ago", ev("ts_one_hour_ago", ts=now - 3600), LATE)

    # ---- language tags ---------------------------------------------------------------------------
    add("lang_empty", ev("lang_empty", lang=""), SCORED, check=clean_lang)
    add("lang_xx_yyyy_zzz", ev("lang_xx_yyyy_zzz", lang="xx-YYYY-zzz"), SCORED, check=lang_is("xx"))
    add("lang_upper", ev("lang_upper", lang="EN-GB"), SCORED, check=lang_is("en"))
    add("lang_very_long", ev("lang_very_long", lang="en" + "-abcdefgh" * 500), DEAD_OR_SCORED, check=lang_is("en"))
    add("lang_star", ev("lang_star", lang="*"), DEAD, INVALID, note="'*' is the all-languages series")
    add("lang_trailing_newline", ev("lang_trailing_newline", lang="en\n"), DEAD_OR_SCORED, check=clean_lang,
        note="'$' in a Python regex matches before a final newline")
    add("lang_int", ev("lang_int", lang=7), DEAD, INVALID)
    add("lang_with_colon", ev("lang_with_colon", lang="en:x"), DEAD, INVALID)

    # ---- topics: they become Redis key parts and alert labels ------------------------------------
    add("topic_200_chars", ev("topic_200_chars", topic="T" * 200), SCORED)
    add("topic_201_chars", ev("topic_201_chars", topic="T" * 201), DEAD, INVALID)
    add("topic_unicode", ev("topic_unicode", topic="特斯拉🚗"), SCORED)
    add("topic_colon_star", ev("topic_colon_star", topic=topic + ":*"), SCORED)
    add("topic_colon_lang", ev("topic_colon_lang", topic=topic + ":en"), SCORED)
    add("topic_glob", ev("topic_glob", topic=topic + "*"), SCORED)
    add("topic_glob_class", ev("topic_glob_class", topic="[A-Z]?"), SCORED)
    add("topic_star", ev("topic_star", topic="*"), DEAD_OR_SCORED)
    add("topic_whitespace", ev("topic_whitespace", topic="   "), DEAD_OR_SCORED)
    add("topic_newline", ev("topic_newline", topic=topic + "\nX"), DEAD_OR_SCORED)
    add("topic_nul", ev("topic_nul", topic=topic + "\u0000"), DEAD_OR_SCORED)
    add("topic_empty", ev("topic_empty", topic=""), DEAD, INVALID)

    # ---- inline images ---------------------------------------------------------------------------
    png = small_image("PNG")
    add("img_png_ok", ev("img_png_ok", image_b64=b64(png)), SCORED, check=has_image)
    add("img_only_png", ev("img_only_png", text="", image_b64=b64(png)), SCORED, check=has_image)
    add("img_jpeg_cmyk", ev("img_jpeg_cmyk", image_b64=b64(small_image("JPEG", "CMYK"))), SCORED, check=has_image)
    add("img_png_16bit", ev("img_png_16bit", image_b64=b64(small_image("PNG", "I;16"))), SCORED, check=has_image)
    add("img_png_palette_trns", ev("img_png_palette_trns", image_b64=b64(small_image("PNG", "P"))), SCORED,
        check=has_image)
    add("img_png_1x10M", ev("img_png_1x10M", image_b64=b64(png_of_zeros(1, 10_000_000))), DEAD, BAD_IMAGE,
        note="issue 8.1: ~20 KB that stalled every partition")
    add("img_png_1x1M", ev("img_png_1x1M", image_b64=b64(png_of_zeros(1, 1_000_000))), DEAD, BAD_IMAGE)
    add("img_png_1Mx1", ev("img_png_1Mx1", image_b64=b64(png_of_zeros(1_000_000, 1))), DEAD, BAD_IMAGE)
    add("img_only_png_1x1M", ev("img_only_png_1x1M", text="", image_b64=b64(png_of_zeros(1, 1_000_000))), DEAD,
        BAD_IMAGE)
    add("img_png_7000x7000_rgba", ev("img_png_7000x7000_rgba", image_b64=b64(png_of_zeros(7000, 7000, 6))), DEAD,
        BAD_IMAGE, note="issue 8.2: 49 Mpx, seconds of CPU and ~460 MB per image")
    add("img_png_bomb_20000", ev("img_png_bomb_20000", image_b64=b64(png_of_zeros(20_000, 20_000, 0, 1))), DEAD,
        BAD_IMAGE, note="400 Mpx (1 bit) in ~50 KB")
    add("img_png_ztxt_bomb", ev("img_png_ztxt_bomb", image_b64=b64(png_ztxt_bomb())), DEAD_OR_SCORED,
        note="metadata chunk inflating to 64 MB")
    add("img_png_zero_dims", ev("img_png_zero_dims", image_b64=b64(png_of_zeros(0, 0))), DEAD, BAD_IMAGE)
    add("img_png_truncated", ev("img_png_truncated", image_b64=b64(png[: len(png) // 2])), DEAD, BAD_IMAGE)
    add("img_jpeg_header_65000", ev("img_jpeg_header_65000", image_b64=b64(jpeg_with_declared_size(65000, 65000))),
        DEAD, BAD_IMAGE)
    add("img_invalid_base64", ev("img_invalid_base64", image_b64="@@not base64@@"), DEAD, INVALID)
    add("img_data_uri", ev("img_data_uri", image_b64="data:image/png;base64," + b64(png)), DEAD, INVALID)
    add("img_b64_with_newlines", ev("img_b64_with_newlines", image_b64=base64.encodebytes(png).decode()), DEAD_OR_SCORED)
    add("img_b64_of_text", ev("img_b64_of_text", image_b64=b64(b"this is not an image at all")), DEAD, BAD_IMAGE)
    add("img_empty_string", ev("img_empty_string", image_b64=""), SCORED, check=text_only)
    add("img_empty_no_text", ev("img_empty_no_text", text="", image_b64=""), DEAD, INVALID)
    add("img_over_max_bytes", ev("img_over_max_bytes", image_b64=b64(bytes(MAX_IMAGE_BYTES + 1))), DEAD, INVALID)
    add("img_tiff", ev("img_tiff", image_b64=b64(small_image("TIFF"))), DEAD_OR_SCORED)
    add("img_gif_animated", ev("img_gif_animated", image_b64=b64(animated_gif())), DEAD_OR_SCORED)
    add("img_bmp", ev("img_bmp", image_b64=b64(small_image("BMP"))), DEAD_OR_SCORED)
    add("img_webp", ev("img_webp", image_b64=b64(small_image("WEBP"))), DEAD_OR_SCORED)
    add("img_svg", ev("img_svg", image_b64=b64(SVG)), DEAD, BAD_IMAGE)
    add("img_ico_around_1x10M", ev("img_ico_around_1x10M", image_b64=b64(ico_around(png_of_zeros(1, 10_000_000)))),
        DEAD, BAD_IMAGE, note="the ICO directory says 256 x 256")
    add("img_gif_huge_screen", ev("img_gif_huge_screen", image_b64=b64(gif_with(screen=(65535, 65535)))), DEAD,
        BAD_IMAGE)
    add("img_gif_huge_frame", ev("img_gif_huge_frame", image_b64=b64(gif_with(frame=(4000, 4000)))), DEAD, BAD_IMAGE,
        note="a 32 x 32 screen, a 4000 x 4000 first frame")
    add("img_bmp_huge_header", ev("img_bmp_huge_header", image_b64=b64(bmp_with_declared_size(50_000, 50_000))),
        DEAD, BAD_IMAGE)
    add("img_jpeg_6000_solid", ev("img_jpeg_6000_solid", image_b64=b64(solid_jpeg(6000, 6000))), DEAD_OR_SCORED,
        note="a 36 Mpx photo: refused by size, or decoded cheaply at reduced scale")
    add("img_png_wide_banner", ev("img_png_wide_banner", image_b64=b64(png_of_zeros(4000, 100, 2))), DEAD_OR_SCORED,
        note="aspect 40:1, 0.4 Mpx")
    add("img_png_lying_idat", ev("img_png_lying_idat", image_b64=b64(png_lying_idat())), DEAD_OR_SCORED)
    add("img_pdf", ev("img_pdf", image_b64=b64(b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF")),
        DEAD, BAD_IMAGE)
    add("img_eps", ev("img_eps", image_b64=b64(EPS)), DEAD, BAD_IMAGE, note="Pillow hands EPS to Ghostscript")

    # ---- image URLs (the suite runs with fetching on): the SSRF guard, never the network --------
    for name, url in [("url_loopback_redis", "http://127.0.0.1:6379/"),
                      ("url_metadata", "http://169.254.169.254/latest/meta-data/"),
                      ("url_file_scheme", "file:///etc/passwd"),
                      ("url_ipv6_mapped_loopback", "http://[::ffff:127.0.0.1]/x.png"),
                      ("url_decimal_ip", "http://2130706433/x.png"),
                      ("url_localhost_dot", "http://localhost./x.png")]:
        add(name, ev(name, image_url=url), SCORED, check=image_refused)
    add("url_only_private", ev("url_only_private", text="", image_url="http://10.0.0.1/x.png"), DEAD,
        frozenset({"image_fetch_failed"}))
    add("url_too_long", ev("url_too_long", image_url="http://example.com/" + "a" * 2048), DEAD, INVALID)
    return cases


class _Drop:
    def __repr__(self) -> str:
        return "<drop>"


_DROP = _Drop()  # ev(..., field=_DROP): leave the field out


if __name__ == "__main__":
    import time
    from collections import Counter

    corpus = build(time.time())
    for c in corpus:
        print(f"{c.name:<28} {c.expect:<15} {c.size:>9} B  {c.note}")
    print(len(corpus), "cases", dict(Counter(c.expect for c in corpus)))
