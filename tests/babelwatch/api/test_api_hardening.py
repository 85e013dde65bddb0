"""The API's pure parts under hostile input: token files, URL redaction, stream slots, matchers on RE2,
non-finite numbers in the alerting models."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time

import pytest
from pydantic import SecretStr, ValidationError

from babelwatch.api.auth import READ, WRITE, AuthError, TokenStore, authorize, bearer_token, parse_tokens
from babelwatch.api.redact import SECRET, redact_route, redact_url, restore_secrets
from babelwatch.api.streams import StreamRefused, StreamSlots
from workers.alerting.model import MAX_REGEX, Matcher, Route, Silence

TOKEN_A = "a" * 16 + "-token-one"
TOKEN_B = "b" * 16 + "-token-two"


# ----------------------------------------------------------------------------------------------- tokens


def test_tokens_file_scopes_hashes_and_bad_lines(caplog):
    hashed = hashlib.sha256(TOKEN_B.encode()).hexdigest()
    text = (f"# comment\n\ngrafana read {TOKEN_A}\nops write sha256:{hashed}\n"
            f"short read tooshort\nbad-scope admin {'c' * 20}\nonly-two-fields {'f' * 20}\n"
            f"grafana write {'d' * 20}\nweird/name read {'e' * 20}\n")
    with caplog.at_level(logging.WARNING, logger="babelwatch.api.auth"):
        entries = parse_tokens(text, "tokens")
    assert [(p.name, sorted(p.scopes)) for _, p in entries] == [("grafana", [READ]), ("ops", [READ, WRITE])]
    # every bad line is reported by number, and no token text reaches the log
    assert [r.getMessage().split(" skipped")[0] for r in caplog.records] == [
        "tokens line 5", "tokens line 6", "tokens line 7", "tokens line 8", "tokens line 9"]
    assert not any(t in caplog.text for t in ("tooshort", "c" * 20, "d" * 20, "e" * 20, "f" * 20, TOKEN_A))


def test_store_authenticates_env_and_file_tokens_with_scopes(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"dash read {TOKEN_A}\n")
    store = TokenStore(SecretStr("env-token-0123456789"), f)
    assert store.authenticate("env-token-0123456789").name == "default"
    assert store.authenticate(TOKEN_A).name == "dash"
    assert store.authenticate("nope") is None and store.authenticate("") is None and store.authenticate(None) is None
    assert store.authenticate("x" * 10_000) is None
    assert authorize(store, f"Bearer {TOKEN_A}", READ).name == "dash"
    assert authorize(store, f"bearer   {TOKEN_A} ", READ).name == "dash"
    with pytest.raises(AuthError) as e:
        authorize(store, f"Bearer {TOKEN_A}", WRITE)
    assert e.value.status == 403 and "may not write" in e.value.detail and TOKEN_A not in e.value.detail
    for header in (None, "", "Basic abc", f"Token {TOKEN_A}", "Bearer", "Bearer wrong"):
        with pytest.raises(AuthError) as e:
            authorize(store, header, READ)
        assert e.value.status == 401
    assert bearer_token("Bearer  t ") == "t"


def test_store_rereads_the_file_when_it_changes_and_forgets_a_removed_file(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"one read {TOKEN_A}\n")
    store = TokenStore(None, f)
    assert store.authenticate(TOKEN_A).name == "one"
    # rotation by atomic replacement (write + rename), the recommended way
    tmp = tmp_path / "tokens.new"
    tmp.write_text(f"two write {TOKEN_B}\n")
    os.replace(tmp, f)
    assert store.authenticate(TOKEN_A) is None
    assert store.authenticate(TOKEN_B).name == "two"
    # an in-place edit (same inode) is seen too: the size or mtime moves
    f.write_text(f"two write {TOKEN_B}\nthree read {TOKEN_A}\n")
    assert store.authenticate(TOKEN_A).name == "three"
    f.unlink()
    assert store.authenticate(TOKEN_B) is None and not store.configured


def test_no_token_configured_closes_the_api():
    store = TokenStore(None, None)
    assert not store.configured
    with pytest.raises(AuthError) as e:
        authorize(store, "Bearer anything", READ)
    assert e.value.status == 403 and "BABELWATCH_API_TOKEN" in e.value.detail
    assert not TokenStore(SecretStr(""), None).configured  # an empty env token is no token


# -------------------------------------------------------------------------------------------- redaction


@pytest.mark.parametrize("url, shown", [
    ("https://hooks.slack.com/services/T000/B000/XXXXSECRET", f"https://hooks.slack.com/{SECRET}"),
    ("https://discord.com/api/webhooks/123/SECRETTOKEN", f"https://discord.com/{SECRET}"),
    ("https://chat.googleapis.com/v1/spaces/AAA/messages?key=K&token=SECRET", f"https://chat.googleapis.com/{SECRET}"),
    ("https://user:pw@example.com/", f"https://example.com/{SECRET}"),
    ("http://am.example.com:9093/api/v2/alerts", f"http://am.example.com:9093/{SECRET}"),
    ("https://example.com/#frag", f"https://example.com/{SECRET}"),
    ("http://[2001:db8::1]:8080/hook?x=1", f"http://[2001:db8::1]:8080/{SECRET}"),
    ("https://am.example.com", "https://am.example.com"),
    ("https://am.example.com/", "https://am.example.com/"),
])
def test_redact_url_keeps_scheme_host_port_only(url, shown):
    assert redact_url(url) == shown


def _route(url: str, name: str = "hook") -> Route:
    return Route.model_validate({"id": "r1", "receivers": [
        {"type": "webhook", "name": name, "url": url},
        {"type": "alertmanager", "name": "am", "url": "http://am.example.com:9093/api/v2/alerts"},
        {"type": "kafka", "name": "k", "topic": "alerts.copy"}]})


def test_redact_route_copies_and_restore_puts_the_stored_url_back():
    slack = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    stored = _route(slack)
    shown = redact_route(stored)
    assert "XXXXSECRET" not in shown.model_dump_json() and stored.receivers[0].url == slack
    assert shown.receivers[2].topic == "alerts.copy"
    # read -> change -> PUT back: the stored URLs come back where the redacted form was sent unchanged
    body = Route.model_validate({**json.loads(shown.model_dump_json()), "description": "changed"})
    assert restore_secrets(body, stored) == []
    assert body.receivers[0].url == slack and body.receivers[1].url == stored.receivers[1].url
    # a redacted URL that does not match its stored receiver (other name, other host, a new route): refused
    for other, against in ((_route(f"https://hooks.slack.com/{SECRET}", name="renamed"), stored),
                           (_route(f"https://evil.example/{SECRET}"), stored),
                           (_route(f"https://hooks.slack.com/{SECRET}"), None)):
        problems = restore_secrets(other, against)
        assert problems and problems[0][0] == 0 and SECRET in problems[0][1]


# ------------------------------------------------------------------------------------------ stream slots


def test_stream_slots_cap_per_token_and_in_all():
    slots = StreamSlots(per_token=2, total=3)
    slots.acquire("a")
    slots.acquire("a")
    with pytest.raises(StreamRefused) as e:
        slots.acquire("a")
    assert (e.value.scope, e.value.limit, e.value.open) == ("token", 2, 2)
    slots.acquire("b")
    with pytest.raises(StreamRefused) as e:
        slots.acquire("c")
    assert (e.value.scope, e.value.limit, e.value.open) == ("server", 3, 3)
    slots.release("a")
    slots.acquire("c")
    assert slots.open == 3 and dict(slots.by_token) == {"a": 1, "b": 1, "c": 1}


# ---------------------------------------------------------------------------------------------- matchers


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|a)*$", "(a*)*b", "(.*a){20}", "((a+)+)+c"])
def test_catastrophic_patterns_match_in_linear_time(pattern):
    m = Matcher.parse(f"topic=~{pattern}")
    hostile = "a" * 100_000 + "!"
    t0 = time.perf_counter()
    for _ in range(10):
        m.matches({"topic": hostile})
    assert time.perf_counter() - t0 < 0.5  # Python's re: (a+)+$ on 25 chars alone took ~12 s


def test_matchers_are_anchored_like_alertmanager():
    assert Matcher.parse("language=~e.").matches({"language": "en"})
    assert not Matcher.parse("language=~e.").matches({"language": "eng"})
    assert not Matcher.parse("language=~e.").matches({"language": "xen"})
    # a value that closes the group early still matches whole labels only
    m = Matcher.parse("topic=~a)|(b")
    assert m.matches({"topic": "a"}) and m.matches({"topic": "b"}) and not m.matches({"topic": "ab"})
    assert Matcher.parse("topic!~T.*").matches({"topic": "AAPL"})
    assert Matcher.parse("env=~").matches({})  # a missing label is the empty string
    assert Matcher.parse("x=~a.b").matches({"x": "a\nb"})  # '.' spans newlines, as before


@pytest.mark.parametrize("text, says", [
    ("topic=~(a)\\1", "invalid regex"),        # backreference: not RE2 (nor Go, nor Alertmanager)
    ("topic=~(?=a)", "invalid regex"),         # look-ahead
    ("topic=~(a{100}){100}", "invalid regex"),  # repetition beyond RE2's bound
    ("topic=~" + "a" * (MAX_REGEX + 1), "at most"),
    ("a=x" + " " * 50_000 + "y", "longer than"),
])
def test_bad_or_oversized_regexes_are_refused(text, says):
    with pytest.raises(ValidationError) as e:
        Matcher.parse(text)
    assert says in str(e.value)


def test_matcher_text_parsing_is_linear_in_blanks():
    t0 = time.perf_counter()
    m = Matcher.parse("topic=" + " " * 400 + "x" + " " * 400)
    assert m.value == "x" and time.perf_counter() - t0 < 0.05


# ------------------------------------------------------------------------------------ non-finite numbers


@pytest.mark.parametrize("field, value", [
    ("starts_at", float("nan")), ("starts_at", float("inf")), ("ends_at", float("inf")), ("ends_at", "inf"),
    ("ends_at", "NaN"), ("starts_at", "-inf"), ("ends_at", 1e300), ("starts_at", -5.0), ("ends_at", True),
    ("starts_at", 10**400),  # an int no float holds: OverflowError escaped validation (a 500)
])
def test_silence_times_must_be_finite_and_in_range(field, value):
    body = {"matchers": ["topic=X"], "starts_at": 1000.0, "ends_at": 2000.0, "created_by": "t", field: value}
    with pytest.raises(ValidationError):
        Silence.model_validate(body)


def test_silence_from_json_with_nan_literals_is_refused():
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = '{"matchers": ["topic=X"], "starts_at": %s, "ends_at": 2000, "created_by": "t"}' % literal
        with pytest.raises(ValidationError):
            Silence.model_validate(json.loads(raw))  # what FastAPI's json.loads hands over


def test_inverted_and_empty_silence_windows_are_refused():
    for starts, ends in ((2000.0, 1000.0), (1000.0, 1000.0), ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z")):
        with pytest.raises(ValidationError, match="ends_at must be after starts_at"):
            Silence.model_validate({"matchers": ["topic=X"], "starts_at": starts, "ends_at": ends, "created_by": "t"})


@pytest.mark.parametrize("field, value", [
    ("group_wait", "inf"), ("group_interval", float("nan")), ("repeat_interval", float("inf")),
    ("group_wait", 1e12), ("group_wait", "1e400"), ("group_wait", 10**400), ("repeat_interval", -10**400),
])
def test_route_durations_must_be_finite(field, value):
    with pytest.raises(ValidationError):
        Route.model_validate({"receivers": [{"type": "kafka", "topic": "t"}], field: value})


@pytest.mark.parametrize("field", ["timeout_s", "backoff_s", "max_backoff_s"])
def test_receiver_numbers_must_be_finite(field):
    for value in (float("nan"), float("inf")):
        with pytest.raises(ValidationError):
            Route.model_validate({"receivers": [{"type": "webhook", "url": "https://h.example/", field: value}]})
