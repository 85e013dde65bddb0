"""Checks on the demo's sample event stream (fusion_model/corpora/sample_events.jsonl)."""
from __future__ import annotations

import bw_paths
import base64
import binascii
import json
import sys
from collections import Counter
from pathlib import Path

REPO_ROOT = bw_paths.REPO
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from babelwatch.demo import sample_source  # noqa: E402

from fusion_model.corpora import SAMPLE_EVENTS as STREAM
MAIN_LANGS = ("en", "zh", "ja", "es", "fr", "de")
TOPICS = {"AAPL", "TSLA", "NVDA", "BTC", "Airbus", "Toyota"}


def _lines() -> list[str]:
    return STREAM.read_text(encoding="utf-8").splitlines()


def _parsed() -> list[tuple[int, object]]:
    """(line index, parsed value) for every line that is JSON."""
    out = []
    for i, line in enumerate(_lines()):
        try:
            out.append((i, json.loads(line)))
        except json.JSONDecodeError:
            pass
    return out


def _valid() -> list[tuple[int, dict]]:
    """Lines that are intended valid events: objects whose meta carries the intended label."""
    return [
        (i, obj)
        for i, obj in _parsed()
        if isinstance(obj, dict) and isinstance(obj.get("meta"), dict) and "expected" in obj["meta"]
    ]


def _true_lang(obj: dict) -> str:
    return obj["meta"].get("true_lang") or obj["lang"]


def test_file_exists_and_is_big_enough():
    assert STREAM.is_file()
    assert len(_lines()) >= 280
    assert STREAM.stat().st_size < 400_000


def test_ids_unique():
    ids = [obj["id"] for _, obj in _parsed() if isinstance(obj, dict) and "id" in obj]
    assert len(ids) == len(set(ids))


def test_valid_events_shape():
    valid = _valid()
    assert len(valid) >= 280
    for _, obj in valid:
        assert "ts" not in obj
        assert obj["id"].startswith("ev-")
        assert obj["source"] in ("news", "social")
        assert obj["topic"] in TOPICS
        assert isinstance(obj["text"], str) and obj["text"].strip()
        assert obj["meta"]["expected"] in ("positive", "negative", "neutral")
        assert "true_lang" in obj["meta"]
        if "lang" in obj:
            assert obj["lang"] == obj["meta"]["true_lang"]
    with_lang = sum("lang" in obj for _, obj in valid)
    assert 0.35 * len(valid) <= with_lang <= 0.65 * len(valid)


def test_languages_and_sentiment_mix():
    valid = _valid()
    per_lang = Counter(_true_lang(obj) for _, obj in valid)
    for lang in MAIN_LANGS:
        assert per_lang[lang] >= 35, (lang, per_lang[lang])
        labels = Counter(obj["meta"]["expected"] for _, obj in valid if _true_lang(obj) == lang)
        for label in ("positive", "negative", "neutral"):
            assert labels[label] >= 0.2 * per_lang[lang], (lang, labels)


def test_burst_block_contiguous_and_tsla():
    parsed = _parsed()
    burst = [i for i, obj in parsed if isinstance(obj, dict) and (obj.get("meta") or {}).get("burst") is True]
    assert len(burst) >= 60
    assert burst == list(range(burst[0], burst[0] + len(burst)))
    lines = _lines()
    for i in burst:
        assert json.loads(lines[i])["topic"] == "TSLA"
    # roughly after the first 60% of the file
    assert 0.45 * len(lines) <= burst[0] <= 0.75 * len(lines)
    # no other event carries a burst key
    for i, obj in parsed:
        if isinstance(obj, dict) and i not in set(burst):
            assert "burst" not in (obj.get("meta") or {})


def test_images_decode_to_png():
    good = 0
    for _, obj in _parsed():
        if not isinstance(obj, dict) or not isinstance(obj.get("image_b64"), str):
            continue
        assert len(obj["image_b64"]) < 4096
        try:
            data = base64.b64decode(obj["image_b64"], validate=True)
        except (binascii.Error, ValueError):
            continue
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            good += 1
    assert good >= 20


def test_invalid_lines_present_outside_burst():
    bad = []
    for i, line in enumerate(_lines()):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            bad.append(i)
            continue
        if not isinstance(obj, dict) or not str(obj.get("id", "")).startswith("ev-"):
            bad.append(i)
    assert len(bad) >= 6
    burst = [i for i, obj in _valid() if obj["meta"].get("burst")]
    assert not any(burst[0] <= i <= burst[-1] for i in bad)


def test_regeneration_is_byte_identical(tmp_path):
    out = tmp_path / "events.jsonl"
    sample_source.main(out)
    assert out.read_bytes() == STREAM.read_bytes()


def test_the_stream_is_made_from_the_data_file():
    """Every text and invalid line of the stream comes from sample_source.json, and all of it is used."""
    data = sample_source.load_source()
    rows = data["texts"] + data["burst_texts"]
    valid = _valid()
    assert sorted((o["meta"]["true_lang"], o["topic"], o["source"], o["meta"]["expected"], o["text"])
                  for _, o in valid) == sorted((r["lang"], r["topic"], r["source"], r["expected"], r["text"])
                                               for r in rows)
    assert all(r["topic"] == "TSLA" for r in data["burst_texts"])
    lines = set(_lines())
    assert all(x["line"] in lines and x["breaks"] for x in data["invalid_lines"])


def test_build_lines_follows_the_data(tmp_path):
    """A changed data file changes the stream: the generator holds no texts of its own."""
    data = sample_source.load_source()
    data["texts"][0] = dict(data["texts"][0], text="A sentence only this test writes")
    lines = sample_source.build_lines(source=data)
    assert sum("A sentence only this test writes" in ln for ln in lines) == 1
    assert len(lines) == len(_lines())


def test_replay_and_the_bench_read_the_sample_alike():
    from babelwatch.bench.pipeline import load_templates
    from babelwatch.replay import json_lines, stamped_lines

    parsed = list(json_lines(STREAM))
    assert [raw.decode() for raw, _ in parsed] == [ln for ln in _lines() if ln.strip()]
    assert sum(obj is None for _, obj in parsed) == 2  # the truncated line and the array
    stamped = list(stamped_lines(STREAM, now=lambda: 1.0))
    assert len(stamped) == len(parsed) and sum(burst for _, burst in stamped) == 80
    assert len(load_templates(STREAM)) == len(_valid())  # every intended-valid event, none of the bad-*
