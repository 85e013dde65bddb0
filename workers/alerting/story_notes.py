"""The stories behind an alert: the bounded ``stories`` annotation (ids kept for the CloudEvent) and
its readable rendering for the Alertmanager and Slack-style formats. docs/design.md, "Stories"."""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

MAX_STORIES = 3
MAX_LANGS = 8  # languages cited per story (largest first); the rest are counted, not quoted
MAX_EXCERPT = 200  # characters of each representative text in an annotation
MAX_RENDERED = 3000  # characters of the readable rendering (Alertmanager/Slack annotation strings)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _clean(text: Any, limit: int) -> str:
    """One line, no control or bidi-override characters, at most ``limit`` characters."""
    s = " ".join(_CONTROL.sub(" ", str(text)).split())
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def story_annotation(views: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """At most MAX_STORIES story views (``workers.stories.view.story_view``), largest first, cut to
    what an alert carries: id, count, languages, mean sentiment and representative per language."""
    chosen = sorted(views, key=lambda v: (-int(v.get("count") or 0), str(v.get("id"))))[:MAX_STORIES]
    out = []
    for v in chosen:
        langs = [str(lang) for lang in (v.get("languages") or ())]
        reps = v.get("representatives") or {}
        sentiment = v.get("sentiment") or {}
        cited = langs[:MAX_LANGS]
        out.append({
            "id": str(v.get("id")),
            "count": int(v.get("count") or 0),
            "languages": langs[:32],
            "sentiment": {lang: float(sentiment[lang]) for lang in cited if lang in sentiment},
            "representatives": {lang: {"id": str(reps[lang].get("id")), "text": _clean(reps[lang].get("text", ""), MAX_EXCERPT)}
                                for lang in cited if isinstance(reps.get(lang), Mapping)},
        })
    return out


def render_stories(stories: Any, limit: int = MAX_RENDERED) -> str:
    """The ``stories`` annotation as readable lines (one per story, one per language), at most
    ``limit`` characters; '' for anything that is not such a list."""
    if not isinstance(stories, list):
        return ""
    lines = []
    for n, s in enumerate(stories, 1):
        if not isinstance(s, Mapping):
            continue
        langs = s.get("languages") or []
        lines.append(_clean(f"Story {n} ({s.get('id')}): {s.get('count')} events in {len(langs)} "
                            f"language(s): {', '.join(map(str, langs))}", 300))
        sentiment = s.get("sentiment") or {}
        for lang, rep in (s.get("representatives") or {}).items():
            text = rep.get("text", "") if isinstance(rep, Mapping) else ""
            sent = sentiment.get(lang)
            mood = f" {float(sent):+.2f}" if isinstance(sent, (int, float)) else ""
            lines.append(f"  [{_clean(lang, 8)}{mood}] {_clean(text, MAX_EXCERPT)}")
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"
