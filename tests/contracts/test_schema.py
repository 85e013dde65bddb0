"""EventValidator (workers/validate.py) and the Event contract (contracts/schema.py)."""
from __future__ import annotations

import bw_paths
import base64
import os
import time
from pathlib import Path

import orjson
import pytest

from contracts.schema import DeadLetter, Event, Limits
from workers.validate import EventValidator, Origin

# the validator reads image headers, so sized test images are a real PNG padded with trailing bytes
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def png_of(n: int) -> bytes:
    return PNG_1PX + b"\x01" * (n - len(PNG_1PX))

REPO_ROOT = bw_paths.REPO
from fusion_model.corpora import SAMPLE_EVENTS as STREAM
TS = 1_714_564_800.0  # 2024-05-01T12:00:00Z
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def event(**over) -> dict:
    base = {"id": "ev-1", "source": "news", "topic": "AAPL", "text": "Apple beats estimates", "ts": TS}
    base.update(over)
    return {k: v for k, v in base.items() if v is not _DROP}


_DROP = object()


def dump(obj) -> bytes:
    return orjson.dumps(obj)


@pytest.fixture
def validator() -> EventValidator:
    return EventValidator(Limits())


def dead(result, reason: str) -> DeadLetter:
    assert isinstance(result, DeadLetter), f"expected a dead letter, got {result!r:.300}"
    assert result.reason == reason, result.errors
    return result


def locs(dl: DeadLetter) -> list[str]:
    return [e.get("loc") for e in dl.errors]


# --- valid events -------------------------------------------------------------------------------

def test_valid_event_with_float_ts(validator):
    ev = validator.validate(dump(event(lang="en", meta={"outlet": "Reuters"})))
    assert isinstance(ev, Event)
    assert ev.id == "ev-1" and ev.topic == "AAPL" and ev.source == "news"
    assert ev.ts == TS and isinstance(ev.ts, float)
    assert ev.lang == "en"
    assert ev.meta == {"outlet": "Reuters"}
    assert ev.image_b64 is None and ev.image_bytes() is None


def test_int_ts_is_accepted_as_float(validator):
    ev = validator.validate(dump(event(ts=1_714_564_800)))
    assert isinstance(ev, Event)
    assert ev.ts == TS and isinstance(ev.ts, float)


@pytest.mark.parametrize(
    "iso",
    ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00+00:00", "2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00.000Z"],
)
def test_valid_event_with_iso_ts(validator, iso):
    ev = validator.validate(dump(event(ts=iso)))
    assert isinstance(ev, Event), getattr(ev, "errors", None)
    assert ev.ts == pytest.approx(TS, abs=1e-3)


@pytest.fixture
def new_york_tz():
    """Run a test with the process in a non-UTC local timezone, restoring it afterwards."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def test_naive_iso_ts_does_not_depend_on_worker_timezone(validator, new_york_tz):
    """An ISO timestamp without offset must not be read in the worker's local time zone:
    two workers in different zones would put the same event into different windows.
    Either reading it as UTC or rejecting it is acceptable; local time is not."""
    res = validator.validate(dump(event(ts="2024-05-01T12:00:00")))
    if isinstance(res, Event):
        assert res.ts == pytest.approx(TS, abs=1e-3), f"naive ISO ts read as local time: {res.ts} != {TS}"
    else:
        assert res.reason == "invalid_event" and "ts" in locs(res)


def test_str_payload_is_accepted(validator):
    ev = validator.validate(dump(event()).decode())
    assert isinstance(ev, Event) and ev.id == "ev-1"


def test_image_only_event_is_valid(validator):
    b64 = base64.b64encode(PNG_1PX).decode()
    ev = validator.validate(dump(event(text=_DROP, image_b64=b64)))
    assert isinstance(ev, Event), getattr(ev, "errors", None)
    assert ev.text == ""
    assert ev.image_bytes() == PNG_1PX


def test_text_and_image_event_is_valid(validator):
    b64 = base64.b64encode(PNG_1PX).decode()
    ev = validator.validate(dump(event(image_b64=b64)))
    assert isinstance(ev, Event)
    assert ev.text == "Apple beats estimates" and ev.image_bytes() == PNG_1PX


@pytest.mark.parametrize(
    "given, expected",
    [("EN-us", "en-us"), ("EN", "en"), ("de", "de"), ("ZH-Hant-TW", "zh-Hant-TW"), ("Fr-CA", "fr-CA")],
)
def test_lang_primary_subtag_is_lowercased(validator, given, expected):
    ev = validator.validate(dump(event(lang=given)))
    assert isinstance(ev, Event), getattr(ev, "errors", None)
    assert ev.lang == expected
    assert ev.lang.split("-", 1)[0] == expected.split("-", 1)[0].lower()


@pytest.mark.parametrize("lang", ["", None])
def test_empty_or_null_lang_means_detect(validator, lang):
    ev = validator.validate(dump(event(lang=lang)))
    assert isinstance(ev, Event)
    assert ev.lang is None


def test_meta_at_the_key_limit_is_valid():
    v = EventValidator(Limits(max_meta_keys=3))
    ev = v.validate(dump(event(meta={"a": 1, "b": 2, "c": 3})))
    assert isinstance(ev, Event) and len(ev.meta) == 3


def test_text_at_the_char_limit_is_valid():
    v = EventValidator(Limits(max_text_chars=10))
    ev = v.validate(dump(event(text="é" * 10)))  # chars, not bytes
    assert isinstance(ev, Event) and len(ev.text) == 10


# --- invalid events -----------------------------------------------------------------------------

def test_missing_topic(validator):
    dl = dead(validator.validate(dump(event(topic=_DROP))), "invalid_event")
    assert locs(dl) == ["topic"]
    assert dl.errors[0]["type"] == "missing"
    assert dl.event_id == "ev-1"


def test_missing_ts(validator):
    dl = dead(validator.validate(dump(event(ts=_DROP))), "invalid_event")
    assert locs(dl) == ["ts"]


@pytest.mark.parametrize("ts", ["yesterday", True, "1714564800x"])
def test_bad_ts(validator, ts):
    dl = dead(validator.validate(dump(event(ts=ts))), "invalid_event")
    assert "ts" in locs(dl)


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_and_no_image(validator, text):
    dl = dead(validator.validate(dump(event(text=text))), "invalid_event")
    assert len(dl.errors) == 1
    assert "neither text nor image" in dl.errors[0]["msg"]


def test_no_text_key_and_no_image(validator):
    dl = dead(validator.validate(dump(event(text=_DROP))), "invalid_event")
    assert any("neither text nor image" in e["msg"] for e in dl.errors)


def test_empty_image_is_not_content(validator):
    """image_b64="" decodes to zero bytes: the event carries neither text nor an image
    (Triton's contract even uses "" to mean "no image"), so it must be a dead letter."""
    res = validator.validate(dump(event(text="", image_b64="")))
    dl = dead(res, "invalid_event")
    assert dl.errors


@pytest.mark.parametrize("b64", ["iVBORw0KGgo***not-base64!!***==", "abc", "####", "aGVsbG8=\nd29ybGQ="])
def test_bad_base64(validator, b64):
    dl = dead(validator.validate(dump(event(image_b64=b64))), "invalid_event")
    assert locs(dl) == ["image_b64"]
    assert "base64" in dl.errors[0]["msg"]


def test_image_clearly_above_limit():
    v = EventValidator(Limits(max_image_bytes=1000))
    b64 = base64.b64encode(b"\x00" * 2000).decode()
    dl = dead(v.validate(dump(event(image_b64=b64))), "invalid_event")
    assert locs(dl) == ["image_b64"]
    assert "larger than 1000 bytes" in dl.errors[0]["msg"]


def test_image_exactly_at_limit_is_valid(validator):
    data = png_of(Limits().max_image_bytes)
    ev = validator.validate(dump(event(image_b64=base64.b64encode(data).decode())))
    assert isinstance(ev, Event), getattr(ev, "errors", None)
    assert ev.image_bytes() == data


@pytest.mark.parametrize("limit, extra", [(1000, 1), (1000, 2), (999, 1), (999, 3)])
def test_image_just_above_limit_is_rejected(limit, extra):
    """The limit is in decoded bytes: max_image_bytes + 1 must already be refused."""
    v = EventValidator(Limits(max_image_bytes=limit))
    assert isinstance(v.validate(dump(event(image_b64=base64.b64encode(png_of(limit)).decode()))), Event)
    data = png_of(limit + extra)
    res = v.validate(dump(event(image_b64=base64.b64encode(data).decode())))
    assert isinstance(res, DeadLetter), f"image of {len(data)} bytes accepted with max_image_bytes={limit}"
    assert res.reason == "invalid_event" and locs(res) == ["image_b64"]


def test_text_above_max_chars():
    v = EventValidator(Limits(max_text_chars=10))
    dl = dead(v.validate(dump(event(text="x" * 11))), "invalid_event")
    assert locs(dl) == ["text"]
    assert "longer than 10" in dl.errors[0]["msg"]


@pytest.mark.parametrize("lang", ["not a lang!!", "e", "english-language-tag-x", "en_US", "123"])
def test_bad_lang_tag(validator, lang):
    dl = dead(validator.validate(dump(event(lang=lang))), "invalid_event")
    assert locs(dl) == ["lang"]


def test_source_as_number(validator):
    dl = dead(validator.validate(dump(event(source=42))), "invalid_event")
    assert locs(dl) == ["source"]
    assert dl.errors[0]["type"] == "string_type"


@pytest.mark.parametrize("source", ["", "has space", "x" * 51, "news/wire"])
def test_bad_source_string(validator, source):
    dl = dead(validator.validate(dump(event(source=source))), "invalid_event")
    assert locs(dl) == ["source"]


def test_extra_unknown_field(validator):
    dl = dead(validator.validate(dump(event(colour="red"))), "invalid_event")
    assert locs(dl) == ["colour"]
    assert dl.errors[0]["type"] == "extra_forbidden"


def test_meta_with_too_many_keys():
    v = EventValidator(Limits(max_meta_keys=3))
    dl = dead(v.validate(dump(event(meta={k: 1 for k in "abcd"}))), "invalid_event")
    assert locs(dl) == ["meta"]
    assert "more than 3 keys" in dl.errors[0]["msg"]


def test_topic_too_long(validator):
    dl = dead(validator.validate(dump(event(topic="T" * 201))), "invalid_event")
    assert locs(dl) == ["topic"]


def test_several_errors_are_all_reported(validator):
    dl = dead(validator.validate(dump(event(topic=_DROP, source=1, lang="!!"))), "invalid_event")
    assert set(locs(dl)) == {"topic", "source", "lang"}
    for e in dl.errors:
        assert set(e) == {"loc", "type", "msg"}  # no echo of the input value


def test_event_id_only_when_a_string(validator):
    dl = dead(validator.validate(dump(event(id=17))), "invalid_event")
    assert dl.event_id is None
    assert "id" in locs(dl)


@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b"{\"id\": \"x\",}", b"not json at all", b"{'id': 'single quotes'}", b"NaN"],
)
def test_not_json(validator, payload):
    dl = dead(validator.validate(payload), "not_json")
    assert dl.errors and dl.errors[0]["msg"]
    assert dl.raw == payload.decode()


@pytest.mark.parametrize("payload, kind", [(b"[1, 2]", "list"), (b"42", "int"), (b'"text"', "str"), (b"null", "NoneType")])
def test_not_object(validator, payload, kind):
    dl = dead(validator.validate(payload), "not_object")
    assert kind in dl.errors[0]["msg"]
    assert dl.raw == payload.decode()


def test_too_large():
    v = EventValidator(Limits(), max_event_bytes=200)
    payload = dump(event(text="x" * 300))
    assert len(payload) > 200
    dl = dead(v.validate(payload), "too_large")
    assert str(len(payload)) in dl.errors[0]["msg"]
    assert dl.raw == payload.decode()


def test_payload_at_byte_limit_is_not_too_large():
    payload = dump(event())
    ev = EventValidator(Limits(), max_event_bytes=len(payload)).validate(payload)
    assert isinstance(ev, Event)


def test_too_large_raw_is_bounded():
    v = EventValidator(Limits(), max_event_bytes=1000)
    payload = dump(event(text="y" * 500_000))
    dl = dead(v.validate(payload), "too_large")
    assert 0 < len(dl.raw) <= 100_000
    assert payload.decode().startswith(dl.raw)


# --- dead-letter bookkeeping --------------------------------------------------------------------

@pytest.mark.parametrize(
    "payload, reason",
    [(b"{oops", "not_json"), (b"[]", "not_object"), (orjson.dumps({"id": "x"}), "invalid_event")],
)
def test_origin_is_copied(validator, payload, reason):
    origin = Origin(topic="babelwatch.events", partition=3, offset=12345)
    dl = dead(validator.validate(payload, origin), reason)
    assert (dl.source_topic, dl.partition, dl.offset) == ("babelwatch.events", 3, 12345)


def test_origin_defaults_to_none(validator):
    dl = dead(validator.validate(b"{oops"), "not_json")
    assert (dl.source_topic, dl.partition, dl.offset) == (None, None, None)


def test_too_large_keeps_origin():
    v = EventValidator(Limits(), max_event_bytes=10)
    dl = dead(v.validate(b"x" * 11, Origin("t", 0, 7)), "too_large")
    assert (dl.source_topic, dl.partition, dl.offset) == ("t", 0, 7)


def test_raw_payload_is_kept(validator):
    payload = dump(event(source=42, text="Ünïcödé 数据 🚀"))
    dl = dead(validator.validate(payload), "invalid_event")
    assert dl.raw == payload.decode("utf-8")
    assert orjson.loads(dl.raw)["text"] == "Ünïcödé 数据 🚀"


def test_received_at_is_now(validator):
    before = time.time()
    dl = dead(validator.validate(b"{oops"), "not_json")
    assert before - 1 <= dl.received_at <= time.time() + 1


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe\x00garbage", b'{"id": "ev-1", "text": "caf\xe9"}', b"\x80" * 10, b'{"id": "\xc3"}'],
)
def test_non_utf8_bytes_do_not_crash(validator, payload):
    res = validator.validate(payload, Origin("t", 1, 2))
    dl = dead(res, "not_json")
    assert "\ufffd" in dl.raw
    assert dl.raw == payload.decode("utf-8", "replace")
    # the dead letter itself must serialise (it goes to the dead-letter topic)
    assert orjson.loads(dl.model_dump_json())["raw"] == dl.raw


def test_validator_never_raises_on_odd_json(validator):
    for payload in [b"{}", b'{"meta": []}', b'{"id": {"nested": 1}}', b'{"ts": 1e400}', b"{" + b'"a":1,' * 1000 + b'"b":2}']:
        res = validator.validate(payload)
        assert isinstance(res, DeadLetter), payload[:40]
        assert res.reason in ("invalid_event", "not_json")


# --- the demo stream ------------------------------------------------------------------------------

def test_sample_stream_dead_letters_are_exactly_the_bad_lines(validator):
    lines = STREAM.read_text(encoding="utf-8").splitlines()
    expected_bad, got_bad, n_valid = set(), set(), 0
    for i, line in enumerate(lines):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
            expected_bad.add(i)
        if isinstance(obj, dict):
            if str(obj.get("id", "")).startswith("bad-"):
                expected_bad.add(i)
            payload = dump({**obj, "ts": TS + i})
        else:
            if obj is not None:  # parseable but not an object (a list holding bad-7)
                expected_bad.add(i)
            payload = line.encode("utf-8")
        res = validator.validate(payload, Origin("babelwatch.events", 0, i))
        if isinstance(res, DeadLetter):
            got_bad.add(i)
            assert res.offset == i
            assert res.errors
        else:
            n_valid += 1
            assert res.ts == TS + i
    assert len(expected_bad) == 8
    assert got_bad == expected_bad
    assert n_valid == len(lines) - 8


def test_sample_stream_bad_lines_have_the_right_reasons(validator):
    reasons = {}
    for line in STREAM.read_text(encoding="utf-8").splitlines():
        if '"bad-' not in line:
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        payload = dump({**obj, "ts": TS}) if isinstance(obj, dict) else line.encode()
        res = validator.validate(payload)
        assert isinstance(res, DeadLetter)
        ident = line.split('"id": "', 1)[1].split('"', 1)[0]
        reasons[ident] = (res.reason, sorted(e.get("loc", "") for e in res.errors))
    assert reasons["bad-1"][0] == "not_json"
    assert reasons["bad-2"] == ("invalid_event", ["topic"])
    assert reasons["bad-3"][0] == "invalid_event"
    assert reasons["bad-4"] == ("invalid_event", ["topic"])
    assert reasons["bad-5"] == ("invalid_event", ["image_b64"])
    assert reasons["bad-6"] == ("invalid_event", ["lang"])
    assert reasons["bad-7"][0] == "not_object"
    assert reasons["bad-8"] == ("invalid_event", ["source"])
