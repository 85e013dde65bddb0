"""Language identification for events that arrive without ``lang``.

lingua ships its n-gram models inside the wheel (no download). Measured on the demo stream's texts
(bench/RESULTS.md): all 75 languages cost ~490-580 us of CPU per text and hold the GIL; the 29
languages below cost ~230 us. So the candidate set is a setting (``BABELWATCH_LANGUAGES``, "all"
for every language lingua knows), and scripts that name their language (kana, Hangul, Han) skip
lingua entirely. Low-accuracy mode: 0.5 s to build, ~100 MB, and more decisive on short headlines
than high-accuracy mode (9 s, 1.2 GB). Unsure texts get ``und`` rather than a guess.
"""
from __future__ import annotations

import re
from typing import Protocol, Sequence

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
        self._detector = builder.with_low_accuracy_mode().with_preloaded_language_models().build()

    def detect_batch(self, texts: Sequence[str]) -> list[str]:
        out = [UNDETERMINED] * len(texts)
        todo = []
        for i, text in enumerate(texts):
            if len(text.strip()) < self.min_chars:
                continue
            lang = by_script(text)
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
