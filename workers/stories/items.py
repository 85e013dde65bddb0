"""What the story store takes per event (``StoryItem``) and which events can join a story at all.
Guarantees and the assignment rules: docs/design.md, "Stories"."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from lingua import Language

MIN_WORD_CHARS = 2  # letters or digits (any script) a text needs: emoji-only or empty -> no story
_SCAN_CHARS = 2000  # enough of a (possibly 100k-char) text to decide that


@dataclass(frozen=True)
class StoryItem:
    topic: str
    position: tuple[str, int] | None  # (ledger source "topic#id:partition", offset); None: no dedup
    event_id: str
    lang: str
    text: str
    sentiment: float  # p(positive) - p(negative)
    embedding: Sequence[float] | np.ndarray | None  # the model's EMBEDDING row; None for image-only rows
    ts: float
    link: str = ""  # the event's URL or its source ("news", "social", ...)


# the languages stories keep apart (each has its own running centre in Redis): those the worker's
# identifier knows; any other tag an event carries counts as "und", so hostile tags cannot grow them
KNOWN_LANGS = frozenset(lang.iso_code_639_1.name.lower() for lang in Language.all())


def lang_key(lang) -> str:
    """The language as stories count it: a known lowercase primary subtag, else ``und``."""
    primary = str(lang or "").split("-", 1)[0].lower()
    return primary if primary in KNOWN_LANGS else "und"


def normalized(item: StoryItem) -> StoryItem:
    lang = lang_key(item.lang)
    return item if lang == item.lang else replace(item, lang=lang)


def wordy(text: str) -> bool:
    """Does the text carry words (not only emoji, punctuation or whitespace)?"""
    n = 0
    for ch in text[:_SCAN_CHARS]:
        if ch.isalnum():
            n += 1
            if n >= MIN_WORD_CHARS:
                return True
    return False


def unit_vector(embedding, dim: int) -> np.ndarray | None:
    """The embedding as a float64 unit vector of ``dim`` values, or None when it is absent, of the
    wrong size, not finite or zero (one bad row fails only itself)."""
    if embedding is None:
        return None
    try:
        v = np.asarray(embedding, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    if v.shape != (dim,) or not np.isfinite(v).all():
        return None
    norm = float(np.linalg.norm(v))
    if not math.isfinite(norm) or norm < 1e-6:
        return None
    return v / norm


def eligible(item: StoryItem, dim: int) -> np.ndarray | None:
    """The item's unit embedding when it can join a story, else None."""
    if not isinstance(item.text, str) or not wordy(item.text) or not item.topic:
        return None
    if not (isinstance(item.ts, (int, float)) and math.isfinite(item.ts)):
        return None
    if not (isinstance(item.sentiment, (int, float)) and math.isfinite(item.sentiment)):
        return None
    return unit_vector(item.embedding, dim)


def story_id(topic: str, event_id: str) -> str:
    """A story's id: from its topic and first event, so a retried batch names it the same."""
    return hashlib.sha1(f"{topic}\0{event_id}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def excerpt(text: str, limit: int) -> str:
    """At most ``limit`` characters, cut at a word boundary when one is near, with an ellipsis."""
    text = " ".join(text[: limit * 4].split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit * 0.6:
        cut = cut[:space]
    return cut.rstrip() + "…"
