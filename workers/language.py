"""Language identification for events that arrive without ``lang``.

lingua ships its n-gram models inside the wheel (no download). Measured on the demo stream's texts
(bench/RESULTS.md): all 75 languages cost ~490-580 us of CPU per text and hold the GIL; the 29
languages below cost ~230 us. So the candidate set is a setting (``BABELWATCH_LANGUAGES``, "all"
for every language lingua knows), and scripts that name their language (kana, Hangul, Han) skip
lingua entirely. Low-accuracy mode: 0.5 s to build, ~100 MB, and more decisive on short headlines
than high-accuracy mode (9 s, 1.2 GB). Unsure texts get ``und`` rather than a guess.

CLD2 (pycld2) goes first: ~7 µs per text against lingua's ~175-240 (measured on the 333 labelled
texts of fusion_model/corpora/handlabelled.jsonl: CLD2 alone 323 right, 8 unsure, 2 wrong; CLD2 first
with lingua for the unsure ones 331 right, lingua alone 332; bench/RESULTS.md). lingua decides
only what CLD2 calls unreliable, or a language outside the candidate set.
"""
from __future__ import annotations

import re
from typing import Protocol, Sequence

import pycld2

from contracts.schema import UNDETERMINED

DEFAULT_LANGUAGES = "en,zh,ja,ko,es,fr,de,it,pt,nl,ru,ar,hi,tr,pl,sv,da,fi,nb,id,vi,th,he,cs,el,uk,ro,hu,fa"

_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")
_HAN = re.compile(r"[\u4e00-\u9fff]")


class LanguageIdentifier(Protocol):
    def detect_batch(self, texts: Sequence[str]) -> list[str]:
        """One ISO 639-1 code (or ``und``) per text."""


def by_script(text: str) -> str | None:
    """The language a script alone gives away, or None. Kana means Japanese even amid kanji."""
    if _KANA.search(text):
        return "ja"
    if _HANGUL.search(text):
        return "ko"
    if _HAN.search(text):
        return "zh"
    return None


# CLD2's codes that differ from ISO 639-1 (its old Hebrew code, its Chinese variants, Norwegian)
_CLD2_CODES = {"iw": "he", "zh-Hant": "zh", "no": "nb", "jw": "jv", "in": "id"}


def by_cld2(text: str, candidates: frozenset[str] | None) -> str | None:
    """CLD2's language when it calls its guess reliable and it is a candidate, else None (unsure)."""
    try:
        reliable, _, details = pycld2.detect(text, bestEffort=False)
    except Exception:  # e.g. text that is not valid UTF-8 once encoded (lone surrogates)
        return None
    if not reliable or not details:
        return None
    code = details[0][1]
    code = _CLD2_CODES.get(code, code)
    if len(code) != 2 or (candidates is not None and code not in candidates):  # "un": unknown
        return None
    return code


class LinguaIdentifier:
    def __init__(self, languages: str = DEFAULT_LANGUAGES, min_confidence: float = 0.5, min_chars: int = 3) -> None:
        from lingua import IsoCode639_1, LanguageDetectorBuilder

        self.min_confidence = min_confidence
        self.min_chars = min_chars
        if languages.strip().lower() == "all":
            builder = LanguageDetectorBuilder.from_all_languages()
        else:
            codes = [c.strip().upper() for c in languages.split(",") if c.strip()]
            unknown = [c for c in codes if not hasattr(IsoCode639_1, c)]
            if unknown:
                raise ValueError(f"lingua knows no language {unknown}; use ISO 639-1 codes or 'all'")
            builder = LanguageDetectorBuilder.from_iso_codes_639_1(*(getattr(IsoCode639_1, c) for c in codes))
        self.candidates = None if languages.strip().lower() == "all" else frozenset(c.lower() for c in codes)
        self._detector = builder.with_low_accuracy_mode().with_preloaded_language_models().build()

    def detect_batch(self, texts: Sequence[str]) -> list[str]:
        out = [UNDETERMINED] * len(texts)
        todo = []
        for i, text in enumerate(texts):
            if len(text.strip()) < self.min_chars:
                continue
            lang = by_script(text) or by_cld2(text, self.candidates)
            if lang is not None:
                out[i] = lang
            else:
                todo.append(i)
        if todo:
            ranked = self._detector.compute_language_confidence_values_in_parallel([texts[i] for i in todo])
            for i, values in zip(todo, ranked):
                if values and values[0].value >= self.min_confidence:
                    out[i] = values[0].language.iso_code_639_1.name.lower()
        return out
