"""The story rules alone (workers/stories: items, book, memory store): who may join a story, the
nearest-story choice, expiry, eviction, representatives, the ledger, hostile inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from workers.stories.book import TopicBook
from workers.stories.centers import LanguageCenters
from workers.stories.rules import StoryRules
from workers.stories.items import StoryItem, eligible, excerpt, story_id, wordy
from workers.stories.memory import InMemoryStories

DIM = 384
rng = np.random.default_rng(7)
BASES = rng.normal(size=(8, DIM))


def vec(k: int, noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """A vector near direction k (plus a shared direction, like a language's component)."""
    r = np.random.default_rng(seed)
    return BASES[k] + noise * r.normal(size=DIM)


_VEC = object()


def item(eid: str, k: int, *, topic="TSLA", lang="en", text="Tesla recalls cars", ts=1000.0, pos=None,
         seed=None, sentiment=0.2, emb=_VEC) -> StoryItem:
    emb = vec(k, seed=sum(map(ord, eid)) if seed is None else seed) if emb is _VEC else emb
    return StoryItem(topic, pos, eid, lang, text, sentiment, emb, ts, "news")


def run(items, **rules) -> tuple[InMemoryStories, list]:
    s = InMemoryStories(StoryRules(**{"threshold": 0.5, **rules}))
    return s, s.assign_sync(items)


@pytest.mark.parametrize("text,ok", [("", False), ("   ", False), ("😀😀🚀🔥", False), ("!!! ?? ...", False),
                                     ("a", False), ("ok", True), ("特斯", True), ("🚀 TSLA", True)])
def test_only_texts_with_words_can_join(text, ok):
    assert wordy(text) is ok
    assert (eligible(item("e", 0, text=text), DIM) is not None) is ok


@pytest.mark.parametrize("emb", [None, [math.nan] * DIM, [math.inf] + [0.1] * (DIM - 1), [0.1] * 383, [0.1] * 385,
                                 [0.0] * DIM, "not a vector", [[0.1] * DIM, [0.1] * DIM]])
def test_bad_embeddings_get_no_story(emb):
    assert eligible(item("e", 0, emb=emb), DIM) is None


def test_hostile_rows_fail_only_themselves():
    good = [item(f"g{i}", 0, ts=1000 + i) for i in range(3)]
    bad = [item("b1", 0, text=""), item("b2", 0, text="😀😀😀"), item("b3", 0, emb=[math.nan] * DIM),
           item("b4", 0, emb=[0.1] * 10), item("b5", 0, emb=None),  # image-only: no embedding
           item("b6", 0, ts=math.nan), item("b7", 0, sentiment=math.inf)]
    long = item("long", 0, text="Tesla " * 20_000, ts=1010)  # 120k chars
    _, ids = run([good[0], *bad, good[1], long, good[2]])
    assert ids[1:8] == [None] * 7
    assert ids[0] is not None and ids[0] == ids[8] == ids[9] == ids[10]


def test_excerpt_is_bounded_and_cut_at_a_word():
    text = "word " * 100_000
    e = excerpt(text, 280)
    assert len(e) <= 280 and e.endswith("…") and not e[:-1].endswith(" ")
    assert excerpt("short text", 280) == "short text"
    assert excerpt("x" * 1000, 50) == "x" * 49 + "…"


def test_same_event_joins_and_different_one_starts_a_story():
    s, ids = run([item("a1", 0, ts=1), item("b1", 1, ts=2), item("a2", 0, ts=3, lang="de"), item("b2", 1, ts=4)])
    assert ids[0] == ids[2] != ids[1] == ids[3]
    assert ids[0] == story_id("TSLA", "a1")  # named after its first event: stable under retries


def test_topics_never_share_stories():
    _, ids = run([item("a1", 0, topic="TSLA", ts=1), item("a2", 0, topic="AAPL", ts=2)])
    assert ids[0] != ids[1]


def test_story_record_counts_languages_sentiment_rate_and_representatives():
    s, ids = run([item("a1", 0, ts=1000, lang="en", sentiment=0.5), item("a2", 0, ts=1060, lang="de", sentiment=-0.5),
                  item("a3", 0, ts=1120, lang="de", sentiment=-0.1, text="Tesla ruft " + "x" * 400)])
    (story,) = s.books["TSLA"].stories.values()
    assert story.count == 3 and story.first_ts == 1000 and story.last_ts == 1120
    assert story.langs["en"]["count"] == 1 and story.langs["de"]["count"] == 2
    assert story.langs["de"]["sentiment_sum"] == pytest.approx(-0.6)
    rep = story.langs["de"]["rep"]
    assert rep["id"] in ("a2", "a3") and len(rep["text"]) <= 280 and rep["link"] == "news"
    # decayed count: 3 events within 2 minutes, tau 600 s
    expected = (1 * math.exp(-60 / 600) + 1) * math.exp(-60 / 600) + 1
    assert story.rate == pytest.approx(expected)


def test_representative_is_the_event_closest_to_the_centroid():
    book = TopicBook("T", StoryRules(threshold=-1))  # everything joins one story
    members = {f"e{k}": vec(0, noise=noise, seed=k) for k, noise in enumerate((1.5, 0.8, 0.05, 1.2, 0.6))}
    xs = {eid: v / np.linalg.norm(v) for eid, v in members.items()}
    for eid, x in xs.items():
        book.assign(item(eid, 0), x, 1.0)
    (story,) = book.stories.values()
    centroid = sum(xs.values())
    closest = max(xs, key=lambda eid: float(xs[eid] @ centroid))
    assert closest == "e2" and story.langs["en"]["rep"]["id"] == closest  # not the first one, e0


def test_quiet_stories_end_by_event_time():
    s, ids = run([item("a1", 0, ts=1000), item("b1", 1, ts=1000 + 3000), item("a2", 0, ts=1000 + 3700)],
                 quiet_s=3600)
    assert ids[2] != ids[0]  # a1's story was quiet for 3700 s > 3600 s: a new one starts
    assert story_id("TSLA", "a1") not in s.books["TSLA"].stories


def test_beyond_max_active_the_longest_quiet_story_ends():
    s, ids = run([item(f"e{k}", k, ts=1000 + k) for k in range(5)], max_active=3)
    assert set(s.books["TSLA"].stories) == set(ids[2:])


def test_redelivered_positions_count_once_per_topic():
    s = InMemoryStories(StoryRules(threshold=0.5))
    batch = [item("a1", 0, pos=("ev#x:0", 5), ts=1), item("b1", 0, topic="AAPL", pos=("ev#x:0", 4), ts=2)]
    first = s.assign_sync(batch)
    assert None not in first  # AAPL's lower offset in the same partition is not a redelivery
    assert s.assign_sync(batch) == [None, None]
    (story,) = s.books["TSLA"].stories.values()
    assert story.count == 1


def test_language_centers_take_out_what_a_language_adds():
    """The same three events in two languages, each language adding its own direction: relative to
    the running centers, the same event across languages is closer than in the raw vectors."""
    c = LanguageCenters(DIM)
    part = {"de": 4 * BASES[6], "ja": 4 * BASES[7]}
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    raw, centered = {}, {}
    for k in range(60):
        lang = ("de", "ja")[k % 2]
        e = unit(vec(k // 2 % 3, seed=k) + part[lang])
        raw[(lang, k // 2 % 3)] = e
        centered[(lang, k // 2 % 3)] = c.center(lang, e)
    assert c.counts == {"de": 30, "ja": 30}
    for event in range(3):
        same_raw = float(raw[("de", event)] @ raw[("ja", event)])
        same_centered = float(centered[("de", event)] @ centered[("ja", event)])
        other_centered = float(centered[("de", event)] @ centered[("ja", (event + 1) % 3)])
        assert same_centered > same_raw + 0.2 and same_centered > other_centered + 0.5


def test_nearest_matches_brute_force():
    book = TopicBook("T", StoryRules(threshold=2.0))  # every event starts a story
    xs = [vec(k % 8, noise=1.0, seed=k) for k in range(40)]
    for k, v in enumerate(xs):
        book.assign(item(f"e{k}", 0), v / np.linalg.norm(v), float(k))
    q = vec(2, noise=0.5, seed=99)
    q /= np.linalg.norm(q)
    brute = sorted(((sid, float(q @ s / np.linalg.norm(s))) for sid, s in book.sums.items()), key=lambda p: -p[1])
    got = book.nearest(q, 2)
    assert [g[0] for g in got] == [b[0] for b in brute[:2]]
    book.remove(got[0][0])
    assert book.nearest(q, 1)[0][0] == brute[1][0]


@pytest.mark.parametrize("lang,key", [("en", "en"), ("en-US", "en"), ("ZH-Hant", "zh"), ("", "und"), (None, "und"),
                                      ("en#n", "und"), ("x" * 100, "und"), ("日本", "und")])
def test_languages_are_counted_by_a_safe_primary_subtag(lang, key):
    s, ids = run([item("a1", 0, lang=lang)])
    (story,) = s.books["TSLA"].stories.values()
    assert list(story.langs) == [key] and ids[0] is not None



def test_centering_a_batch_equals_one_by_one():
    one, many = LanguageCenters(DIM), LanguageCenters(DIM)
    langs = ["en", "de", "en", "ja", "de", "en"] * 3
    vs = [vec(k % 4, seed=k) for k in range(len(langs))]
    vs = [v / np.linalg.norm(v) for v in vs]
    expected = [one.center(lang, v) for lang, v in zip(langs, vs)]
    got = many.center_many(langs[:7], vs[:7]) + many.center_many(langs[7:], vs[7:])
    for a, b in zip(expected, got):
        np.testing.assert_allclose(a, b, atol=1e-12)
    assert one.counts == many.counts


def test_language_keys_are_bounded_whatever_tags_events_carry():
    from workers.stories.items import KNOWN_LANGS, lang_key

    assert lang_key("EN-us") == "en" and lang_key("ja") == "ja"
    assert lang_key("klingon") == "und" and lang_key("xx") == "und" and lang_key(None) == "und"
    assert lang_key("en\x00:centers") == "und"
    hostile = {lang_key("".join(chr(97 + (i * 7 + j) % 26) for j in range(2 + i % 7))) for i in range(10_000)}
    assert hostile <= KNOWN_LANGS | {"und"}  # 10k distinct tags: no new keys beyond the known ones
