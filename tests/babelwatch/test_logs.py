"""Log lines parse back to what was logged: logfmt escapes quotes, backslashes, newlines and control
characters (a traceback stays one line); JSON lines are JSON."""
from __future__ import annotations

import json
import logging

import pytest

from babelwatch.logs import JsonFormatter, LogfmtFormatter, formatter, parse_logfmt

HOSTILE = ['say "hi"', "two\nlines", "back\\slash", "tab\tand\rcr", "", "a=b", "nul\x00bell\x07", "ünïcødé 日本",
           '\\"', 'ends with \\']


def record(msg: str, exc: bool = False, **extra) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError('bad "thing"\nsecond line')
        except ValueError:
            import sys
            info = sys.exc_info()
    r = logging.LogRecord("babelwatch.test", logging.WARNING, __file__, 1, msg, (), info)
    for k, v in extra.items():
        setattr(r, k, v)
    return r


@pytest.mark.parametrize("text", HOSTILE)
def test_logfmt_round_trips_hostile_text(text):
    line = LogfmtFormatter().format(record(text, detail=text))
    assert "\n" not in line and "\r" not in line
    fields = parse_logfmt(line)
    assert fields["msg"] == text and fields["detail"] == text
    assert fields["level"] == "warning" and fields["logger"] == "babelwatch.test"


def test_logfmt_traceback_stays_one_line_and_parses():
    line = LogfmtFormatter().format(record("failed", exc=True))
    assert "\n" not in line
    exc = parse_logfmt(line)["exc"]
    assert exc.startswith("Traceback") and 'ValueError: bad "thing"\nsecond line' in exc


def test_plain_values_stay_bare():
    line = LogfmtFormatter().format(record("started", port=8080))
    assert " msg=started " in line and line.endswith("port=8080")


@pytest.mark.parametrize("text", HOSTILE)
def test_json_lines_parse(text):
    line = JsonFormatter().format(record(text, detail=text, obj=object()))
    assert "\n" not in line
    out = json.loads(line)
    assert out["msg"] == text and out["detail"] == text and out["level"] == "warning"
    assert out["obj"].startswith("<object")


def test_unknown_format_is_refused():
    assert isinstance(formatter("json"), JsonFormatter)
    with pytest.raises(ValueError, match="logfmt, json"):
        formatter("xml")
