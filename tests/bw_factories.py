"""Builders for the records the workers exchange, shared by unit and integration tests."""
from __future__ import annotations

import itertools

from contracts.schema import Scored
from workers.windows import WindowState

_ids = itertools.count()

# one short text per language, for tests that need real multilingual events
TEXTS = {
    "en": "Shares rallied after the company reported record quarterly profit",
    "de": "Die Aktie fiel nach der Gewinnwarnung des Vorstands deutlich",
    "fr": "Le constructeur annonce un rappel massif de ses véhicules en Europe",
    "es": "Las acciones subieron con fuerza tras los resultados trimestrales",
    "zh": "公司季度利润创历史新高，股价大涨",
    "ja": "同社の株価は決算発表を受けて大幅に下落した",
}

_PROBS = {
    "negative": {"negative": 0.8, "neutral": 0.15, "positive": 0.05},
    "neutral": {"negative": 0.1, "neutral": 0.8, "positive": 0.1},
    "positive": {"negative": 0.05, "neutral": 0.15, "positive": 0.8},
}


def make_scored(topic: str = "AAPL", lang: str = "en", label: str = "positive", ts: float = 1_000_000.0,
                sentiment: float | None = None) -> Scored:
    probs = dict(_PROBS[label])
    return Scored(
        id=f"s-{next(_ids)}",
        topic=topic,
        source="news",
        lang=lang,
        lang_detected=False,
        label=label,
        probabilities=probs,
        sentiment=probs["positive"] - probs["negative"] if sentiment is None else sentiment,
        modalities=["text"],
        model="test:1",
        ts=ts,
        scored_at=ts,
    )


def make_window(count: int, history: tuple, topic: str = "TSLA", lang: str = "*", start: int = 6000,
                size_s: int = 60, sentiment_sum: float = 0.0) -> WindowState:
    return WindowState(topic=topic, lang=lang, start=start, size_s=size_s, count=count,
                       sentiment_sum=sentiment_sum, history=tuple(history))
