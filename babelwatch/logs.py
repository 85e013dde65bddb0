"""Structured logs: one line per record, logfmt (``ts= level= logger= msg= key=value ...``) or JSON.

Fields passed with ``extra={...}`` become key=value pairs (or JSON members), so logs stay greppable
and machine-parsable. logfmt values are quoted when they hold spaces, ``=``, quotes or control
characters, with ``\\``, ``"``, newlines and tabs escaped as in Go's logfmt: a multi-line message or
a traceback stays one line that parses back to the same text (:func:`parse_logfmt`).
"""
from __future__ import annotations

import json
import logging
import re
import time

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("logfmt", "json")

_NEEDS_QUOTES = re.compile(r'[\s="\\\x00-\x1f\x7f]')
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE = re.compile(r'[\\"\n\r\t\x00-\x08\x0b\x0c\x0e-\x1f\x7f]')


def _escape_char(m: re.Match) -> str:
    c = m.group()
    return _ESCAPES.get(c) or f"\\u{ord(c):04x}"


def _fmt(v: object) -> str:
    s = str(v)
    if s and not _NEEDS_QUOTES.search(s):
        return s
    return '"' + _ESCAPE.sub(_escape_char, s) + '"'


def _timestamp(record: logging.LogRecord) -> str:
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))}.{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _STD}


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={_timestamp(record)}",
            f"level={record.levelname.lower()}",
            f"logger={_fmt(record.name)}",
            f"msg={_fmt(record.getMessage())}",
        ]
        parts += [f"{_fmt(k)}={_fmt(v)}" for k, v in _fields(record).items()]
        if record.exc_info:
            parts.append(f"exc={_fmt(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {"ts": _timestamp(record), "level": record.levelname.lower(),
                                  "logger": record.name, "msg": record.getMessage()}
        for k, v in _fields(record).items():
            out.setdefault(k, v)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


_PAIR = re.compile(r'([^\s="]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')
_UNESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|.)')


def _unescape(m: re.Match) -> str:
    c = m.group(1)
    if c.startswith("u") and len(c) == 5:
        return chr(int(c[1:], 16))
    return {"n": "\n", "r": "\r", "t": "\t"}.get(c, c)


def parse_logfmt(line: str) -> dict[str, str]:
    """One logfmt line -> its fields (the inverse of :class:`LogfmtFormatter`, for tests and tools)."""
    out = {}
    for key, value in _PAIR.findall(line):
        if value.startswith('"'):
            value = _UNESCAPE.sub(_unescape, value[1:-1])
        out[key] = value
    return out


def formatter(fmt: str = "logfmt") -> logging.Formatter:
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return JsonFormatter() if fmt == "json" else LogfmtFormatter()


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("babelwatch").setLevel(level.upper())
