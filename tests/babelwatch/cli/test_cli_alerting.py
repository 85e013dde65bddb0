"""The CLI's matcher parser and its one-line rendering of API errors (no server needed)."""
from __future__ import annotations

import httpx
import pytest

from babelwatch.cli.alerting import CliError, _detail, default_api_url, matcher_text, parse_matcher
from contracts.settings import Settings


@pytest.mark.parametrize("text, want", [
    ("topic=TSLA", ("topic", "=", "TSLA")),
    ("language=~e.", ("language", "=~", "e.")),
    ("severity!=warning", ("severity", "!=", "warning")),
    ("detector!~volume_.*|cusum", ("detector", "!~", "volume_.*|cusum")),
    (' topic = "AT&T, Inc." ', ("topic", "=", "AT&T, Inc.")),
    ('summary="say \\"hi\\""', ("summary", "=", 'say "hi"')),
    ("topic=", ("topic", "=", "")),
    ("stage=~open|closed", ("stage", "=~", "open|closed")),
])
def test_parse_matcher_accepts_amtool_syntax(text, want):
    m = parse_matcher(text)
    assert (m["name"], m["op"], m["value"]) == want


@pytest.mark.parametrize("text, says", [
    ("topic", "is not 'name=value'"),
    ("=TSLA", "is not 'name=value'"),
    ("1topic=TSLA", "is not 'name=value'"),
    ("to-pic=TSLA", "is not 'name=value'"),
    ("topic=~(unclosed", "invalid regex"),
    ("", "is not 'name=value'"),
])
def test_parse_matcher_rejects_bad_syntax_as_usage_error(text, says):
    with pytest.raises(CliError) as exc:
        parse_matcher(text)
    assert exc.value.code == 2
    assert says in str(exc.value) and repr(text) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_matcher_text_round_trips():
    for text in ("topic=TSLA", "language=~e.", 'comment!="a \\"b\\""'):
        m = parse_matcher(text)
        assert parse_matcher(matcher_text(m)) == m


def test_api_errors_become_one_line():
    pydantic_422 = httpx.Response(422, json={"detail": [
        {"type": "too_short", "loc": ["body", "receivers"], "msg": "List should have at least 1 item", "input": []},
        {"type": "value_error", "loc": ["body", "matchers", 0], "msg": "Value error, invalid regex '('", "input": "("},
    ]})
    assert _detail(pydantic_422) == "receivers: List should have at least 1 item; matchers.0: invalid regex '('"
    assert _detail(httpx.Response(404, json={"detail": "no subscription 'x'"})) == "no subscription 'x'"
    assert _detail(httpx.Response(502, text="Bad gateway\nfrom proxy")) == "Bad gateway from proxy"


def test_default_api_url_from_settings():
    assert default_api_url(Settings(api_host="127.0.0.1", api_port=9000)) == "http://127.0.0.1:9000"
    assert default_api_url(Settings(api_host="0.0.0.0", api_port=8080)) == "http://127.0.0.1:8080"
    assert default_api_url(Settings(api_host="::1", api_port=8080)) == "http://[::1]:8080"
