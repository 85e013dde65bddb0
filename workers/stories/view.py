"""A story as readers see it (API, alerts, ``babelwatch score``): the stored record plus what is
derived from it (languages, mean sentiment per language, growth rate per minute)."""
from __future__ import annotations


def story_view(record: dict, rate_tau_s: float) -> dict:
    langs = record.get("langs") or {}
    return {
        "id": record["id"],
        "topic": record["topic"],
        "first_seen": record["first_ts"],
        "last_seen": record["last_ts"],
        "count": record["count"],
        "languages": sorted(langs, key=lambda lang: (-langs[lang]["count"], lang)),
        "counts": {lang: v["count"] for lang, v in langs.items()},
        "sentiment": {lang: round(v["sentiment_sum"] / v["count"], 4) for lang, v in langs.items() if v["count"]},
        # the decayed count approximates events per rate_tau_s
        "rate_per_min": round(record["rate"] * 60.0 / rate_tau_s, 4),
        "rate_at": record["rate_ts"],
        "representatives": {lang: {k: v["rep"][k] for k in ("id", "lang", "text", "link")}
                            for lang, v in langs.items() if v.get("rep")},
    }


ORDERS = {  # how readers may list a topic's stories: most recent, largest or fastest growing first
    "recent": lambda v: (-v["last_seen"], v["id"]),
    "size": lambda v: (-v["count"], -v["last_seen"], v["id"]),
    "growth": lambda v: (-v["rate_per_min"], -v["last_seen"], v["id"]),
}


def select_stories(views: list[dict], lang: str | None = None, order: str = "recent", limit: int = 20) -> list[dict]:
    """At most ``limit`` of a topic's story views, only those with events in ``lang`` when given."""
    chosen = [v for v in views if lang is None or lang in v["counts"]]
    return sorted(chosen, key=ORDERS[order])[:max(0, limit)]
