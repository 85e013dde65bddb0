"""The stories behind an alert: the bounded annotation and its readable renderings (Alertmanager
webhook, Alertmanager API, Slack-style), with hostile texts."""
from __future__ import annotations

import json

from workers.alerting.model import AlertInstance, NotificationGroup
from workers.alerting.sinks.alertmanager import postable_alerts
from workers.alerting.sinks.webhook import alertmanager_webhook, slack_message
from workers.alerting.story_notes import (MAX_EXCERPT, MAX_LANGS, MAX_RENDERED, MAX_STORIES, render_stories,
                                          story_annotation)


def view(sid: str, count: int, texts: dict[str, str]) -> dict:
    return {"id": sid, "topic": "TSLA", "count": count, "languages": list(texts),
            "counts": {lang: 1 for lang in texts}, "sentiment": {lang: -0.5 for lang in texts},
            "representatives": {lang: {"id": f"{sid}-{lang}", "lang": lang, "text": t, "link": "news"}
                                for lang, t in texts.items()}}


def test_largest_first_at_most_three_with_texts_and_ids():
    views = [view(f"s{n}", n, {"en": f"english {n}", "de": f"deutsch {n}"}) for n in range(1, 6)]
    ann = story_annotation(views)
    assert [s["id"] for s in ann] == ["s5", "s4", "s3"] and MAX_STORIES == 3
    assert ann[0]["representatives"] == {"en": {"id": "s5-en", "text": "english 5"},
                                         "de": {"id": "s5-de", "text": "deutsch 5"}}
    assert ann[0]["sentiment"] == {"en": -0.5, "de": -0.5} and ann[0]["languages"] == ["en", "de"]
    text = render_stories(ann)
    assert "Story 1 (s5): 5 events in 2 language(s): en, de" in text
    assert "[en -0.50] english 5" in text and "[de -0.50] deutsch 5" in text
    assert "s2" not in text


def test_hostile_texts_are_one_bounded_line_each():
    nasty = "<!channel> <https://evil|click> &amp;\n\r\x00\u202eevil\u2028 " + "🚀" * 5000
    langs = {f"l{i}": nasty for i in range(20)}
    ann = story_annotation([view("big", 10**6, langs), view("x" * 5000, 1, {"en": ""})])
    assert len(ann[0]["representatives"]) == MAX_LANGS
    for rep in ann[0]["representatives"].values():
        assert len(rep["text"]) <= MAX_EXCERPT and "\n" not in rep["text"] and "\u202e" not in rep["text"]
        assert "\x00" not in rep["text"]
    text = render_stories(ann)
    assert len(text) <= MAX_RENDERED
    assert all(line.isprintable() for line in text.split("\n"))
    assert render_stories("not a list") == "" and render_stories([1, None, {"id": 1}]).startswith("Story 3")


def alert(stories) -> AlertInstance:
    return AlertInstance(labels={"topic": "TSLA", "detector": "volume_spike", "language": "*"},
                         state="firing", active_since=1.0, fired_at=1.0, annotations={"summary": "30 events", "stories": stories,
                                                                     "sample_events": ["e1", "e2"]})


def test_formats_show_stories_readably_and_keep_ids():
    ann = story_annotation([view("s1", 7, {"en": "Tesla recalls <2M> cars", "ja": "テスラがリコール"})])
    group = NotificationGroup(group_key="k", route_id="r", receivers=[], group_labels={"topic": "TSLA"},
                              status="firing", alerts=[alert(ann)], created_at=2.0)
    am = alertmanager_webhook(group, "hook")["alerts"][0]["annotations"]
    assert "[ja -0.50] テスラがリコール" in am["stories"] and "Tesla recalls <2M> cars" in am["stories"]
    assert json.loads(am["sample_events"]) == ["e1", "e2"]
    posted = postable_alerts(group, now=3.0)[0]["annotations"]
    assert posted["stories"] == am["stories"]
    slack = slack_message(group)["attachments"][0]["text"]
    assert "Tesla recalls &lt;2M&gt; cars" in slack and "<2M>" not in slack and "テスラがリコール" in slack
    # the CloudEvent payload keeps the structured annotation (ids)
    payload = group.payload("hook")
    assert payload["alerts"][0]["annotations"]["stories"][0]["representatives"]["en"]["id"] == "s1-en"
